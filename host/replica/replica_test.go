package replica

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/plugin/checkpoint"
)

func openRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	store, err := clicklog.Open(t.TempDir(), clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg, err := registry.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// writeCheckpoint makes a folder shaped like a bi-encoder checkpoint: the
// weights (whose hash the registry keeps), a nested file and fusion.json.
func writeCheckpoint(t *testing.T, weights string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		checkpoint.WeightsFile: weights, "config.json": `{"model_type":"bert"}`,
		"1_Pooling/config.json": `{"pooling_mode_mean_tokens":true}`,
		"fusion.json":           `{"method":"minmax","bm25_weight":0.35,"fitted_on":"test"}`,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func register(t *testing.T, reg *registry.Registry, dir string) registry.Version {
	t.Helper()
	h, err := checkpoint.Hash(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Register(registry.Version{Checkpoint: dir, CheckpointHash: h, Metrics: map[string]float64{"ndcg@10": 0.7}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// servingRegistry is a primary's registry serving one checkpoint, v1.
func servingRegistry(t *testing.T) (*registry.Registry, registry.Version) {
	t.Helper()
	reg := openRegistry(t)
	v1 := register(t, reg, writeCheckpoint(t, "weights one"))
	if _, err := reg.SetServing(v1.ID, "base", nil); err != nil {
		t.Fatal(err)
	}
	return reg, v1
}

// primary serves a registry the way host/server does for followers, with a
// hook that may alter a file's bytes or the manifest on the way.
type primary struct {
	reg      *registry.Registry
	srv      *httptest.Server
	corrupt  func(path string, body []byte) []byte
	manifest func([]File) []File
	polls    atomic.Int32
	seen     Roster
}

func startPrimary(t *testing.T, reg *registry.Registry) *primary {
	p := &primary{reg: reg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/serving", func(w http.ResponseWriter, r *http.Request) {
		p.polls.Add(1)
		p.seen.Saw(Report{Name: r.Header.Get(HeaderName), Serving: r.Header.Get(HeaderServing)})
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"invalid bearer token"}`, http.StatusUnauthorized)
			return
		}
		v, _, _ := reg.Serving()
		json.NewEncoder(w).Encode(v)
	})
	mux.HandleFunc("GET /admin/models/{id}/files", func(w http.ResponseWriter, r *http.Request) {
		v, _ := reg.Get(r.PathValue("id"))
		files, err := Manifest(v.Checkpoint)
		if err != nil {
			t.Error(err)
		}
		if p.manifest != nil {
			files = p.manifest(files)
		}
		json.NewEncoder(w).Encode(map[string]any{"files": files})
	})
	mux.HandleFunc("GET /admin/models/{id}/files/{path...}", func(w http.ResponseWriter, r *http.Request) {
		v, _ := reg.Get(r.PathValue("id"))
		raw, err := os.ReadFile(filepath.Join(v.Checkpoint, r.PathValue("path")))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if p.corrupt != nil {
			raw = p.corrupt(r.PathValue("path"), raw)
		}
		w.Write(raw)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func newFollower(t *testing.T, url string, reg *registry.Registry) (*Follower, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	f, err := New(Options{Primary: url, Token: "tok", Name: "r1", Poll: 20 * time.Millisecond, Dir: dir, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return f, dir
}

// sameFiles fails unless the two folders hold the same files and bytes.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	ma, err := Manifest(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := Manifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ma, mb) {
		t.Fatalf("copy differs:\n%v\n%v", ma, mb)
	}
}

func TestFollowerCopiesAndSwapsThePrimarysVersion(t *testing.T) {
	preg := openRegistry(t)
	v1 := register(t, preg, writeCheckpoint(t, "weights one"))
	v2 := register(t, preg, writeCheckpoint(t, "weights two"))
	if _, err := preg.SetServing(v1.ID, "base", nil); err != nil {
		t.Fatal(err)
	}
	p := startPrimary(t, preg)
	freg := openRegistry(t)
	f, dir := newFollower(t, p.srv.URL, freg)

	// At start: copied and recorded as serving, nothing swapped live.
	if err := f.Prime(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, ok, err := freg.Serving()
	if err != nil || !ok || got.ID != v1.ID || got.CheckpointHash != v1.CheckpointHash || got.Checkpoint != filepath.Join(dir, v1.ID) {
		t.Fatalf("serving after prime: %+v %v %v", got, ok, err)
	}
	if got.Fusion == nil || got.Fusion.BM25Weight != 0.35 || got.Metrics["ndcg@10"] != 0.7 {
		t.Fatalf("the copy lost the fusion or metrics: %+v", got)
	}
	sameFiles(t, v1.Checkpoint, got.Checkpoint)

	var swaps []string
	swap := func(_ context.Context, version, _ string) error {
		swaps = append(swaps, version)
		_, err := freg.SetServing(version, "test", nil)
		return err
	}
	// In step: a poll changes nothing.
	if err := f.Sync(context.Background(), swap); err != nil || len(swaps) != 0 {
		t.Fatalf("sync in step: %v, swaps %v", err, swaps)
	}
	// The primary swaps: the follower copies v2 and swaps it in live.
	if _, err := preg.SetServing(v2.ID, "gate", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(context.Background(), swap); err != nil || !reflect.DeepEqual(swaps, []string{v2.ID}) {
		t.Fatalf("sync after the primary's swap: %v, swaps %v", err, swaps)
	}
	sameFiles(t, v2.Checkpoint, filepath.Join(dir, v2.ID))
	// The primary rolls back: v1 is already here, only swapped.
	if _, err := preg.Rollback(v1.ID, "bad", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(context.Background(), swap); err != nil || !reflect.DeepEqual(swaps, []string{v2.ID, v1.ID}) {
		t.Fatalf("sync after the primary's rollback: %v, swaps %v", err, swaps)
	}
	if st := f.Status(); st.Serving != v1.ID || st.Failures != 0 || st.LastError != "" || st.LastSync.IsZero() {
		t.Fatalf("status: %+v", st)
	}
	if r := p.seen.List(); len(r) != 1 || r[0].Name != "r1" || r[0].Serving != v2.ID {
		t.Fatalf("the primary's roster: %+v", r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("replica folder holds %d entries, want the two copies", len(entries))
	}
}

func TestFollowerRefusesABadCopy(t *testing.T) {
	preg, _ := servingRegistry(t)
	for _, tc := range []struct {
		name     string
		corrupt  func(string, []byte) []byte
		manifest func([]File) []File
		want     string
	}{
		{"a flipped byte", func(p string, b []byte) []byte {
			if p == "config.json" {
				b[0] ^= 1
			}
			return b
		}, nil, "sha256"},
		{"a short file", func(p string, b []byte) []byte { return b[:len(b)/2] }, nil, "bytes"},
		{"a longer file", func(p string, b []byte) []byte { return append(b, "more"...) }, nil, "bytes"},
		{"a path out of the folder", nil, func(fs []File) []File {
			return append(fs, File{Path: "../escape", Size: 1, SHA256: strings.Repeat("0", 64)})
		}, "leaves the folder"},
		{"weights of another hash", nil, func(fs []File) []File {
			for i := range fs {
				if fs[i].Path == checkpoint.WeightsFile {
					fs[i].SHA256 = strings.Repeat("a", 64)
				}
			}
			return fs
		}, "registered hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPrimary(t, preg)
			p.corrupt, p.manifest = tc.corrupt, tc.manifest
			freg := openRegistry(t)
			f, dir := newFollower(t, p.srv.URL, freg)
			err := f.Prime(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
			if vs, _ := freg.List(); len(vs) != 0 {
				t.Fatalf("a bad copy was registered: %+v", vs)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Fatalf("a bad copy was left in %s: %v", dir, entries)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a file was written outside the replica folder")
			}
			if st := f.Status(); st.Failures != 1 || !strings.Contains(st.LastError, tc.want) {
				t.Fatalf("status: %+v", st)
			}
		})
	}
}

func TestFollowerKeepsServingWhenThePrimaryFails(t *testing.T) {
	preg, v1 := servingRegistry(t)
	p := startPrimary(t, preg)
	freg := openRegistry(t)
	f, _ := newFollower(t, p.srv.URL, freg)
	if err := f.Prime(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.srv.Close()
	swapped := false
	swap := func(context.Context, string, string) error { swapped = true; return nil }
	for range 2 {
		if err := f.Sync(context.Background(), swap); err == nil || !strings.Contains(err.Error(), p.srv.URL) {
			t.Fatalf("primary down: %v", err)
		}
	}
	if st := f.Status(); st.Failures != 2 || st.LastError == "" || st.LastSync.IsZero() || swapped {
		t.Fatalf("status: %+v, swapped %v", st, swapped)
	}
	if v, ok, _ := freg.Serving(); !ok || v.ID != v1.ID {
		t.Fatalf("the follower stopped serving %s: %+v", v1.ID, v)
	}

	// A wrong token is the primary's refusal, with its message.
	p2 := startPrimary(t, preg)
	f2, err := New(Options{Primary: p2.srv.URL, Token: "wrong", Name: "r2", Poll: time.Second, Dir: t.TempDir(), Registry: openRegistry(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.Prime(context.Background()); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "invalid bearer token") {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestFollowerRefusesAnotherRegistrysVersion(t *testing.T) {
	preg, v1 := servingRegistry(t)
	p := startPrimary(t, preg)
	// The follower's data folder already has its own v1, another checkpoint.
	freg := openRegistry(t)
	own := register(t, freg, writeCheckpoint(t, "other weights"))
	if own.ID != v1.ID {
		t.Fatalf("ids %s %s", own.ID, v1.ID)
	}
	f, _ := newFollower(t, p.srv.URL, freg)
	if err := f.Prime(context.Background()); err == nil || !strings.Contains(err.Error(), "another host's registry") {
		t.Fatalf("got %v", err)
	}
}

func TestRunPollsUntilCancelled(t *testing.T) {
	preg, _ := servingRegistry(t)
	p := startPrimary(t, preg)
	f, _ := newFollower(t, p.srv.URL, openRegistry(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx, func(context.Context, string, string) error { return nil }); close(done) }()
	deadline := time.Now().Add(2 * time.Second)
	for p.polls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n := p.polls.Load(); n < 3 {
		t.Fatalf("%d polls in 2 s at a 20 ms interval", n)
	}
}

func TestManifestAndOpenStayInTheFolder(t *testing.T) {
	dir := writeCheckpoint(t, "w")
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	files, err := Manifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
	}
	if want := []string{"1_Pooling/config.json", "config.json", "fusion.json", "model.safetensors"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("manifest %v, want %v", names, want)
	}
	for _, name := range []string{"../" + filepath.Base(filepath.Dir(outside)) + "/secret", "link", "/etc/passwd", "1_Pooling"} {
		if f, err := Open(dir, name); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	if f, err := Open(dir, "1_Pooling/config.json"); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
}
