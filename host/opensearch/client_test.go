package opensearch

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesWhatIsNotANodeURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9200", "ftp://x", "http://"} {
		if _, err := New(u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestUnreachableNodeIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := New("http://" + addr)
	_, err = c.Search(context.Background(), "x", "", MatchQuery("text", "q", 1, false))
	if err == nil || !strings.Contains(err.Error(), "node http://"+addr+" unreachable") {
		t.Fatalf("%v", err)
	}
	err = c.WaitHealthy(context.Background(), 700*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not healthy after 700ms") {
		t.Fatalf("%v", err)
	}
}

func TestNodeErrorsCarryTheirReason(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing/_search":
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [missing]"}],"type":"index_not_found_exception","reason":"no such index [missing]"},"status":404}`))
		case "/_bulk":
			w.Write([]byte(`{"errors":true,"items":[{"index":{"_id":"a","status":201}},{"index":{"_id":"b","error":{"type":"mapper_parsing_exception"}}}]}`))
		default:
			w.WriteHeader(500)
			w.Write([]byte(`{"error":{"root_cause":[{"type":"class_cast_exception","reason":"BigDecimal"}],"type":"m_l_exception","reason":"Fail to execute PREDICT"},"status":500}`))
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL)
	ctx := context.Background()
	_, err := c.Page(ctx, "missing", map[string]any{"match_all": map[string]any{}}, "timestamp", nil, 10)
	if !errors.Is(err, ErrNoIndex) {
		t.Errorf("missing index: %v", err)
	}
	_, err = c.Search(ctx, "i", "p", MatchQuery("text", "q", 5, true))
	var oe *Error
	if !errors.As(err, &oe) || oe.Status != 500 || oe.Reason != "m_l_exception: Fail to execute PREDICT (BigDecimal)" {
		t.Errorf("pipeline failure: %v", err)
	}
	err = c.Bulk(ctx, "i", []Doc{{ID: "a", Source: map[string]string{}}, {ID: "b", Source: map[string]string{}}})
	if err == nil || !strings.Contains(err.Error(), `document "b" refused`) {
		t.Errorf("bulk: %v", err)
	}
}
