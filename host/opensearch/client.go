// Package opensearch is a small HTTP client for an OpenSearch node: what the
// reranker needs to be a cluster's rerank stage (an ML Commons connector to
// our /v1/rerank, a remote model, a search pipeline with a rerank processor),
// to index a corpus, to search through a pipeline, and to read an index to
// its end in a stable order (search_after), as the UBI importer does.
package opensearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one node. Create it with New.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the node at base (e.g. http://127.0.0.1:9200).
func New(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("opensearch: %q is not an http(s) URL of a node", base)
	}
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// Error is a node's refusal: its status and the reason it gave.
type Error struct {
	Method, Path string
	Status       int
	Reason       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("opensearch: %s %s: %d %s", e.Method, e.Path, e.Status, e.Reason)
}

// Do sends body (nil, or a value encoded as JSON) and decodes the answer into
// out (nil: discarded). A node that cannot be reached, or answers with a 4xx
// or 5xx, is an error that says which request and why.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("opensearch: %s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(raw)
	}
	return c.do(ctx, method, path, "application/json", rd, out)
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("opensearch: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("opensearch: node %s unreachable: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("opensearch: %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Reason: reason(raw)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("opensearch: %s %s: answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// reason is the most specific message in an OpenSearch error body.
func reason(raw []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Type      string `json:"type"`
			Reason    string `json:"reason"`
			RootCause []struct {
				Reason string `json:"reason"`
			} `json:"root_cause"`
		}
		if json.Unmarshal(e.Error, &obj) == nil && obj.Reason != "" {
			if len(obj.RootCause) > 0 && obj.RootCause[0].Reason != obj.Reason {
				return obj.Type + ": " + obj.Reason + " (" + obj.RootCause[0].Reason + ")"
			}
			return obj.Type + ": " + obj.Reason
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil {
			return s
		}
	}
	const max = 500
	if len(raw) > max {
		raw = raw[:max]
	}
	return string(raw)
}

// WaitHealthy polls cluster health until the node is at least yellow, or
// fails after timeout with the last error.
func (c *Client) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		var h struct {
			Status string `json:"status"`
		}
		last = c.Do(ctx, http.MethodGet, "/_cluster/health?wait_for_status=yellow&timeout=1s", nil, &h)
		if last == nil && (h.Status == "yellow" || h.Status == "green") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("opensearch: node %s not healthy after %s: %v", c.base, timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Doc is a document to index: its _id and source.
type Doc struct {
	ID     string
	Source any
}

// Bulk indexes docs into index in one request and refreshes it, failing on
// the first item the node refused.
func (c *Client) Bulk(ctx context.Context, index string, docs []Doc) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, d := range docs {
		if err := enc.Encode(map[string]any{"index": map[string]string{"_index": index, "_id": d.ID}}); err != nil {
			return err
		}
		if err := enc.Encode(d.Source); err != nil {
			return fmt.Errorf("opensearch: bulk: document %q: %w", d.ID, err)
		}
	}
	var res struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			ID    string          `json:"_id"`
			Error json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := c.do(ctx, http.MethodPost, "/_bulk?refresh=true", "application/x-ndjson", &buf, &res); err != nil {
		return err
	}
	if res.Errors {
		for _, it := range res.Items {
			for _, r := range it {
				if len(r.Error) > 0 && string(r.Error) != "null" {
					return fmt.Errorf("opensearch: bulk into %s: document %q refused: %s", index, r.ID, r.Error)
				}
			}
		}
	}
	return nil
}

// Hit is one search hit.
type Hit struct {
	ID     string          `json:"_id"`
	Score  float64         `json:"_score"`
	Source json.RawMessage `json:"_source"`
	Sort   []any           `json:"sort"`
}

// SearchResult is the part of a search answer the callers read.
type SearchResult struct {
	Hits struct {
		Hits []Hit `json:"hits"`
	} `json:"hits"`
}

// Search runs body against index, through pipeline when it is not empty.
func (c *Client) Search(ctx context.Context, index, pipeline string, body any) (*SearchResult, error) {
	path := "/" + url.PathEscape(index) + "/_search"
	if pipeline != "" {
		path += "?search_pipeline=" + url.QueryEscape(pipeline)
	}
	var res SearchResult
	if err := c.Do(ctx, http.MethodPost, path, body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// MatchQuery is a search for text in field, its top size hits, with the
// rerank processor's query context when rerank is set.
func MatchQuery(field, text string, size int, rerank bool) map[string]any {
	body := map[string]any{
		"size":  size,
		"query": map[string]any{"match": map[string]any{field: text}},
	}
	if rerank {
		body["ext"] = map[string]any{"rerank": map[string]any{"query_context": map[string]any{"query_text": text}}}
	}
	return body
}

// ErrNoIndex says an index does not exist.
var ErrNoIndex = errors.New("no such index")

// Page reads up to size documents of index matching query, sorted by sortField
// (ascending) and then _id, starting after the sort values after (nil: from
// the start). The last hit's Sort is where the next page starts.
func (c *Client) Page(ctx context.Context, index string, query any, sortField string, after []any, size int) ([]Hit, error) {
	body := map[string]any{
		"size":  size,
		"query": query,
		"sort":  []any{map[string]string{sortField: "asc"}, map[string]string{"_id": "asc"}},
	}
	if after != nil {
		body["search_after"] = after
	}
	res, err := c.Search(ctx, index, "", body)
	var oe *Error
	if errors.As(err, &oe) && oe.Status == http.StatusNotFound {
		return nil, fmt.Errorf("opensearch: index %s: %w", index, ErrNoIndex)
	}
	if err != nil {
		return nil, err
	}
	return res.Hits.Hits, nil
}

// MGet returns the sources of the documents ids of index that exist.
func (c *Client) MGet(ctx context.Context, index string, ids []string) (map[string]json.RawMessage, error) {
	var res struct {
		Docs []struct {
			ID     string          `json:"_id"`
			Found  bool            `json:"found"`
			Source json.RawMessage `json:"_source"`
		} `json:"docs"`
	}
	if err := c.Do(ctx, http.MethodPost, "/"+url.PathEscape(index)+"/_mget", map[string]any{"ids": ids}, &res); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(res.Docs))
	for _, d := range res.Docs {
		if d.Found {
			out[d.ID] = d.Source
		}
	}
	return out, nil
}

// URL is the node's base URL.
func (c *Client) URL() string { return c.base }
