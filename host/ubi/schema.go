// Package ubi reads OpenSearch's User Behavior Insights logs (the ubi_queries
// and ubi_events indices of the opensearch-project/user-behavior-insights
// schema) from a cluster into our click log, resumably and idempotently, so
// that the click model, fine-tuning, the gate and experiments work for an
// OpenSearch deployment as for the bleve host.
package ubi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
)

// Query is a ubi_queries document: one search and the hits it showed.
type Query struct {
	QueryID         string         `json:"query_id"`
	UserQuery       string         `json:"user_query"`
	ClientID        string         `json:"client_id"`
	Application     string         `json:"application"`
	QueryResponseID string         `json:"query_response_id"`
	HitIDs          []string       `json:"query_response_hit_ids"`
	Timestamp       Time           `json:"timestamp"`
	Attributes      QueryAttribute `json:"query_attributes"`
}

// QueryAttribute is what our side reads of query_attributes, free-form in
// UBI: the session, the model version that ranked the hits and, for an
// experiment, its id, the arm ("control", "treatment", or "interleaved"), and
// for an interleaved list the team of each hit (aligned with the hit ids).
type QueryAttribute struct {
	SessionID    string   `json:"session_id"`
	ModelVersion string   `json:"model_version"`
	Experiment   string   `json:"experiment"`
	Arm          string   `json:"arm"`
	Teams        []string `json:"teams"`
}

// Event is a ubi_events document: a user's action on an object a query showed.
type Event struct {
	ActionName string     `json:"action_name"`
	QueryID    string     `json:"query_id"`
	ClientID   string     `json:"client_id"`
	SessionID  string     `json:"session_id"`
	Timestamp  Time       `json:"timestamp"`
	Attributes EventAttrs `json:"event_attributes"`
}

// EventAttrs is the part of event_attributes a click needs.
type EventAttrs struct {
	Object struct {
		ObjectID      string `json:"object_id"`
		ObjectIDField string `json:"object_id_field"`
	} `json:"object"`
	Position struct {
		Ordinal int `json:"ordinal"`
	} `json:"position"`
	SessionID string `json:"session_id"`
	// DwellMS is not in the UBI schema; an application may record it.
	DwellMS int64 `json:"dwell_ms"`
}

// Time is a UBI timestamp: RFC 3339 text or epoch milliseconds, as the date
// mapping of the UBI indices accepts both.
type Time struct{ time.Time }

// UnmarshalJSON reads either form.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			t.Time = time.UnixMilli(ms).UTC()
			return nil
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("timestamp %q: want RFC 3339 or epoch milliseconds", s)
		}
		t.Time = v.UTC()
		return nil
	}
	var ms int64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("timestamp %s: want RFC 3339 or epoch milliseconds", b)
	}
	t.Time = time.UnixMilli(ms).UTC()
	return nil
}

// SearchID is the click log's id of UBI query queryID.
func SearchID(queryID string) string { return "ubi-" + queryID }

// Impression is q as a click log search: its hits at positions 1..n, in
// experiment arm "<experiment>:<arm>" when it has one.
func (q Query) Impression() (clicklog.Impression, error) {
	switch {
	case q.QueryID == "":
		return clicklog.Impression{}, fmt.Errorf("no query_id")
	case q.UserQuery == "":
		return clicklog.Impression{}, fmt.Errorf("query %s: no user_query", q.QueryID)
	case len(q.HitIDs) == 0:
		return clicklog.Impression{}, fmt.Errorf("query %s: no query_response_hit_ids", q.QueryID)
	case q.Timestamp.IsZero():
		return clicklog.Impression{}, fmt.Errorf("query %s: no timestamp", q.QueryID)
	}
	a := q.Attributes
	imp := clicklog.Impression{SearchID: SearchID(q.QueryID), Time: q.Timestamp.Time, Query: q.UserQuery,
		UserID: q.ClientID, SessionID: a.SessionID, ModelVersion: a.ModelVersion, Reranked: a.ModelVersion != ""}
	if a.Experiment != "" || a.Arm != "" {
		if a.Experiment == "" || (a.Arm != interleave.ArmControl && a.Arm != interleave.ArmTreatment && a.Arm != interleave.ArmInterleaved) {
			return clicklog.Impression{}, fmt.Errorf("query %s: experiment %q arm %q: want an experiment id and arm control, treatment or interleaved", q.QueryID, a.Experiment, a.Arm)
		}
		imp.Arm = interleave.ArmLabel(a.Experiment, a.Arm)
	}
	if a.Arm == interleave.ArmInterleaved && len(a.Teams) != len(q.HitIDs) {
		return clicklog.Impression{}, fmt.Errorf("query %s: interleaved with %d teams for %d hits", q.QueryID, len(a.Teams), len(q.HitIDs))
	}
	for i, id := range q.HitIDs {
		s := clicklog.Shown{DocID: id, Position: i + 1}
		if a.Arm == interleave.ArmInterleaved {
			s.Team = a.Teams[i]
		}
		imp.Results = append(imp.Results, s)
	}
	return imp, nil
}
