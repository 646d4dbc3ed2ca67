package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/plugin/contract"
)

func errUnavailable() error { return fmt.Errorf("plugin exited: %w", contract.ErrUnavailable) }

func TestAdminDisabledWithoutToken(t *testing.T) {
	e := start(t, setup{})
	var out map[string]string
	code, _ := do(t, "POST", e.url+"/admin/docs", `{"id":"x","title":"t","text":"x"}`, &out, "Authorization", "Bearer anything")
	if code != 403 || !strings.Contains(out["error"], "admin endpoints are disabled") {
		t.Fatalf("%d %v", code, out)
	}
}

func TestAdminDocuments(t *testing.T) {
	e := start(t, setup{ix: newIndex(t), config: func(c *configs.Config) { c.AdminToken = "t0k3n" }})
	auth := []string{"Authorization", "Bearer t0k3n"}
	var out map[string]any

	if code, _ := do(t, "POST", e.url+"/admin/docs", `{"id":"z1","title":"Quokkafin","text":"x"}`, &out); code != 401 {
		t.Fatalf("no token: %d %v", code, out)
	}
	if code, _ := do(t, "POST", e.url+"/admin/docs", `{"id":"z1","title":"Quokkafin","text":"x"}`, &out, "Authorization", "Bearer t0k3n-"); code != 401 {
		t.Fatalf("wrong token: %d %v", code, out)
	}
	code, _ := do(t, "POST", e.url+"/admin/docs", `[{"id":"z1","title":"Quokkafin regrowth","text":"Zorblastema cells."},{"id":"z2","title":"Other","text":"quokkafin"}]`, &out, auth...)
	if code != 200 || out["indexed"] != 2.0 {
		t.Fatalf("add: %d %v", code, out)
	}
	var res SearchResponse
	do(t, "GET", e.url+"/search?q=quokkafin+zorblastema", "", &res)
	if res.Total != 2 || res.Hits[0].ID != "z1" {
		t.Fatalf("added documents not searchable: %+v", res)
	}

	if code, _ := do(t, "PUT", e.url+"/admin/docs/z1", `{"title":"Replaced","text":"axolotl"}`, &out, auth...); code != 200 {
		t.Fatalf("update: %d %v", code, out)
	}
	res = SearchResponse{}
	do(t, "GET", e.url+"/search?q=zorblastema", "", &res)
	if res.Total != 0 {
		t.Fatalf("old text still found after update: %+v", res)
	}
	var d docJSON
	do(t, "GET", e.url+"/docs/z1", "", &d)
	if d.Title != "Replaced" || d.Text != "axolotl" {
		t.Fatalf("doc after update %+v", d)
	}

	if code, _ := do(t, "DELETE", e.url+"/admin/docs/z1", "", &out, auth...); code != 200 || out["deleted"] != "z1" {
		t.Fatalf("delete: %d %v", code, out)
	}
	if code, _ := do(t, "DELETE", e.url+"/admin/docs/z1", "", &out, auth...); code != 404 {
		t.Fatalf("second delete: %d %v", code, out)
	}

	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/admin/docs", `{"title":"no id"}`, "document 0: id is missing"},
		{"POST", "/admin/docs", `[]`, "no documents"},
		{"POST", "/admin/docs", `[{"id":"a"},{"id":"a"}]`, "appears twice"},
		{"POST", "/admin/docs", `{"id":"a","body":"x"}`, `unknown field "body"`},
		{"POST", "/admin/docs", `{"id":"` + strings.Repeat("i", 600) + `"}`, "over the 512-byte limit"},
		{"POST", "/admin/docs", `"text"`, "want a document"},
		{"PUT", "/admin/docs/a", `{"id":"b","text":"x"}`, "differs from the id in the path"},
	} {
		var out map[string]string
		if code, _ := do(t, tc.method, e.url+tc.path, tc.body, &out, auth...); code != 400 || !strings.Contains(out["error"], tc.want) {
			t.Errorf("%s %s %s: %d %q, want 400 containing %q", tc.method, tc.path, tc.body, code, out["error"], tc.want)
		}
	}
}
