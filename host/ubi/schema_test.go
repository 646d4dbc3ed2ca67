package ubi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTimeForms(t *testing.T) {
	want := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, raw := range []string{`"2026-12-06T10:00:00Z"`, `"2026-12-06T11:00:00+01:00"`, `1796551200000`, `"1796551200000"`} {
		var v Time
		if err := json.Unmarshal([]byte(raw), &v); err != nil || !v.Equal(want) {
			t.Errorf("%s: %v %v", raw, v, err)
		}
	}
	for _, raw := range []string{`"yesterday"`, `true`, `{}`} {
		var v Time
		if err := json.Unmarshal([]byte(raw), &v); err == nil {
			t.Errorf("%s: accepted as %v", raw, v)
		}
	}
}

func TestQueryImpression(t *testing.T) {
	q := func(mut func(*Query)) Query {
		v := Query{QueryID: "q1", UserQuery: "vitamin d", ClientID: "u1", HitIDs: []string{"d1", "d2"}}
		v.Timestamp.Time = time.Unix(1, 0)
		mut(&v)
		return v
	}
	imp, err := q(func(v *Query) {
		v.Attributes = QueryAttribute{Experiment: "e1", Arm: "interleaved", Teams: []string{"control", "treatment"}, ModelVersion: "v2"}
	}).Impression()
	if err != nil || imp.SearchID != "ubi-q1" || imp.Arm != "e1:interleaved" || imp.Results[1].Team != "treatment" || imp.Results[1].Position != 2 || !imp.Reranked {
		t.Fatalf("%+v %v", imp, err)
	}
	for name, tc := range map[string]struct {
		mut  func(*Query)
		want string
	}{
		"no id":       {func(v *Query) { v.QueryID = "" }, "no query_id"},
		"no text":     {func(v *Query) { v.UserQuery = "" }, "no user_query"},
		"no hits":     {func(v *Query) { v.HitIDs = nil }, "no query_response_hit_ids"},
		"no time":     {func(v *Query) { v.Timestamp = Time{} }, "no timestamp"},
		"arm alone":   {func(v *Query) { v.Attributes.Arm = "control" }, "want an experiment id"},
		"unknown arm": {func(v *Query) { v.Attributes = QueryAttribute{Experiment: "e", Arm: "b"} }, "arm \"b\""},
		"teams short": {func(v *Query) {
			v.Attributes = QueryAttribute{Experiment: "e", Arm: "interleaved", Teams: []string{"control"}}
		}, "1 teams for 2 hits"},
	} {
		if _, err := q(tc.mut).Impression(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
