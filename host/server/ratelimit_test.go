package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
)

// One address cannot flood the click log: past the burst it gets 429
// until tokens come back at the configured rate; another address is
// unaffected.
func TestClicksAreRateLimitedPerAddress(t *testing.T) {
	l := newClickLimiter(2, 3)
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { return clock }
	from := func(addr string) *http.Request {
		r := httptest.NewRequest("POST", "/click", nil)
		r.RemoteAddr = addr
		return r
	}
	for i := range 3 {
		if !l.allow(from("10.0.0.1:5000")) {
			t.Fatalf("click %d within the burst refused", i)
		}
	}
	if l.allow(from("10.0.0.1:5001")) {
		t.Fatal("a fourth click at once was allowed (another port, same address)")
	}
	if !l.allow(from("10.0.0.2:5000")) {
		t.Fatal("another address was limited")
	}
	clock = clock.Add(500 * time.Millisecond) // one token back at 2 a second
	if !l.allow(from("10.0.0.1:5000")) || l.allow(from("10.0.0.1:5000")) {
		t.Fatal("the rate does not refill one token in half a second")
	}

	// Through the server: the refusal is a JSON 429 with Retry-After.
	e := start(t, setup{config: func(c *configs.Config) { c.HTTP.ClickRate, c.HTTP.ClickBurst = 1, 2 }})
	codes := map[int]int{}
	for range 4 {
		var out map[string]string
		code, hdr := do(t, "POST", e.url+"/click", `{"search_id":"nope","doc_id":"d"}`, &out)
		codes[code]++
		if code == http.StatusTooManyRequests && (hdr.Get("Retry-After") == "" || out["error"] == "") {
			t.Errorf("429 without Retry-After or message: %v %v", hdr, out)
		}
	}
	if codes[http.StatusNotFound] != 2 || codes[http.StatusTooManyRequests] != 2 {
		t.Errorf("statuses %v: want 2 handled (unknown search: 404) and 2 refused", codes)
	}
}
