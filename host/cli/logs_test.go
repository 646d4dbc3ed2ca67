package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/finetune/impression"
)

const trecSample = "../clicklog/testdata/trec-session-2013-sample/sessions.jsonl"

func readExportFile(t *testing.T, path string) []impression.Impression {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []impression.Impression
	if err := impression.Read(f, func(e impression.Impression) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLogsImportAndExport(t *testing.T) {
	dir := t.TempDir()
	out, err := evalCLI(t, "logs", "import-trec", "--data-dir", dir, "--base-time", "2026-03-01T00:00:00Z", trecSample)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imported 15 searches (159 results shown) and 32 clicks") {
		t.Fatalf("import said %q", out)
	}

	all := filepath.Join(dir, "all.jsonl")
	if _, err := evalCLI(t, "logs", "export", "--data-dir", dir, "--out", all); err != nil {
		t.Fatal(err)
	}
	got := readExportFile(t, all)
	clicks := 0
	for _, e := range got {
		for _, r := range e.Results {
			clicks += r.Clicks
		}
	}
	if len(got) != 15 || clicks != 32 {
		t.Fatalf("export: %d searches, %d clicks; want 15 and 32", len(got), clicks)
	}

	since := time.Date(2026, 3, 1, 0, 5, 0, 0, time.UTC)
	want := 0
	for _, e := range got {
		if !e.Time.Before(since) {
			want++
		}
	}
	part := filepath.Join(dir, "since.jsonl")
	if _, err := evalCLI(t, "logs", "export", "--data-dir", dir, "--since", since.Format(time.RFC3339), "--out", part); err != nil {
		t.Fatal(err)
	}
	if n := len(readExportFile(t, part)); n != want || want == 0 || want == len(got) {
		t.Fatalf("--since kept %d of %d, want %d (and the sample must straddle it)", n, len(got), want)
	}
}

func TestLogsErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"logs", "export", "--data-dir", dir}, "--out is required"},
		{[]string{"logs", "export", "--data-dir", dir, "--since", "yesterday", "--out", filepath.Join(dir, "x")}, `--since "yesterday"`},
		{[]string{"logs", "export", "--data-dir", dir, "--out", filepath.Join(dir, "missing", "x.jsonl")}, "no such file"},
		{[]string{"logs", "import-trec", "--data-dir", dir, filepath.Join(dir, "absent.tsv")}, "no such file"},
		{[]string{"logs", "import-trec", "--data-dir", dir, "--base-time", "monday", trecSample}, "--base-time"},
	}
	for _, c := range cases {
		if _, err := evalCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("a failed export left a file: %v", err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"2026-03-01T08:30:00Z":      time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC),
		"2026-03-01T08:30:00+02:00": time.Date(2026, 3, 1, 6, 30, 0, 0, time.UTC),
		"2026-03-01":                time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		"72h":                       time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1h", "2026-13-01", "soon"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) accepted", in)
		}
	}
}
