package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/embcache"
)

// model init writes either kind; --tiny takes --kind too, and an unknown
// kind is refused before anything is written.
func TestModelInitKinds(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		kind checkpoint.Kind
		want []string
	}{
		{[]string{"--tiny", "--kind", "bi-encoder"}, checkpoint.BiEncoder,
			[]string{"tiny random bi-encoder", "kind bi-encoder: pooling mean, normalize true, similarity cosine, max_seq_length 256, dimension 32"}},
		{[]string{"--tiny"}, checkpoint.CrossEncoder, []string{"tiny random cross-encoder"}},
		{[]string{"--from", "../../plugin/testdata/tiny-ce", "--kind", "bi-encoder"}, checkpoint.BiEncoder,
			[]string{"wrote bi-encoder to", "similarity cosine, max_seq_length 256"}},
		{[]string{"--from", "../../plugin/testdata/tiny-ce", "--kind", "cross-encoder"}, checkpoint.CrossEncoder,
			[]string{"wrote cross-encoder to"}},
	} {
		out := filepath.Join(dir, regexp.MustCompile(`[^a-z-]+`).ReplaceAllString(strings.Join(c.args, "_"), "_"))
		stdout, err := evalCLI(t, append([]string{"model", "init", "--out", out}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		for _, w := range c.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, stdout)
			}
		}
		cfg, err := checkpoint.ReadConfig(out)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Kind != c.kind || checkpoint.IsSentenceFolder(out) != (c.kind == checkpoint.BiEncoder) {
			t.Errorf("%v: ReadConfig says %v (modules.json: %v), want %v", c.args, cfg.Kind, checkpoint.IsSentenceFolder(out), c.kind)
		}
	}
	bogus := filepath.Join(dir, "bogus")
	if _, err := evalCLI(t, "model", "init", "--tiny", "--kind", "bogus", "--out", bogus); err == nil ||
		!strings.Contains(err.Error(), `--kind "bogus": want cross-encoder or bi-encoder`) {
		t.Errorf("--kind bogus: %v", err)
	}
	if _, err := os.Stat(bogus); !os.IsNotExist(err) {
		t.Errorf("--kind bogus wrote %s (%v)", bogus, err)
	}
}

func TestIndexModelErrors(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--embed-only"}, "--embed-only needs --model"},
		{[]string{"--model", "../../plugin/testdata/tiny-ce"}, "is a cross-encoder, not a bi-encoder"},
		{[]string{"--model", filepath.Join(data, "none")}, "--model: checkpoint"},
	} {
		args := append([]string{"index", "--dataset", scifactSample, "--data-dir", data}, c.args...)
		if _, err := evalCLI(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	// Refused before the BM25 build.
	if _, err := os.Stat(filepath.Join(data, "index")); !os.IsNotExist(err) {
		t.Errorf("a refused --model built the index: %v", err)
	}
}

var (
	embeddedLine = regexp.MustCompile(`embedded (\d+) documents with .*: (\d+) already cached, (\d+) newly embedded`)
	cacheLine    = regexp.MustCompile(`embedding cache (\S+): (\d+) bytes, (\d+) embeddings, (\d+) bytes/document`)
)

// index --model embeds every document of the SciFact sample, as the server
// sends it to the reranker, into the cache file under <data-dir>/embeddings;
// a second run finds them all cached.
func TestIndexPrecomputesEmbeddings(t *testing.T) {
	plugin := buildPlugin(t)
	data := t.TempDir()
	model := tinyBiEncoder(t, filepath.Join(t.TempDir(), "tiny-bi"))
	run := func(extra ...string) (docs, cached, fresh int, cache string, size int64) {
		t.Helper()
		args := append([]string{"index", "--dataset", scifactSample, "--data-dir", data, "--model", model,
			"--plugin", plugin, "--device", "cpu", "--threads", "1"}, extra...)
		out, err := evalCLI(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", extra, err, out)
		}
		m := embeddedLine.FindStringSubmatch(out)
		c := cacheLine.FindStringSubmatch(out)
		if m == nil || c == nil {
			t.Fatalf("%v: output:\n%s", extra, out)
		}
		if indexed := strings.Contains(out, "indexed 1000 documents"); indexed == slices.Contains(extra, "--embed-only") {
			t.Errorf("%v: BM25 index built: %v\n%s", extra, indexed, out)
		}
		atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
		size, _ = strconv.ParseInt(c[2], 10, 64)
		return atoi(m[1]), atoi(m[2]), atoi(m[3]), c[1], size
	}
	docs, cached, fresh, cache, size := run()
	if docs != 1000 || cached != 0 || fresh != 1000 {
		t.Fatalf("first run: %d documents, %d cached, %d embedded", docs, cached, fresh)
	}
	if filepath.Dir(cache) != filepath.Join(data, "embeddings") || !strings.HasSuffix(cache, embcache.Ext) {
		t.Errorf("cache file %s is not under <data-dir>/embeddings", cache)
	}
	if st, err := os.Stat(cache); err != nil || st.Size() != size {
		t.Errorf("cache file %s: %v, size %d, reported %d", cache, err, st.Size(), size)
	}
	docs, cached, fresh, _, _ = run("--embed-only")
	if docs != 1000 || cached != 1000 || fresh != 0 {
		t.Errorf("second run: %d documents, %d cached, %d embedded", docs, cached, fresh)
	}

	// The cache holds each document's text as a search sends it
	// (dataset.DocText, the one rule: trimmed title, a space, trimmed text;
	// 4 sample documents have outer whitespace, so the rule matters).
	cfg, err := checkpoint.ReadConfig(model)
	if err != nil {
		t.Fatal(err)
	}
	c, err := embcache.Open(filepath.Dir(cache), strings.TrimSuffix(filepath.Base(cache), embcache.Ext), cfg.Sentence.Dim)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := os.ReadFile(filepath.Join(scifactSample, "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []embcache.Key
	untrimmed := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var d struct{ Title, Text string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		if d.Title == "" || d.Text == "" {
			t.Fatalf("sample document without title or text: %s", line)
		}
		if strings.TrimSpace(d.Title) != d.Title || strings.TrimSpace(d.Text) != d.Text {
			untrimmed++
		}
		keys = append(keys, embcache.KeyOf(strings.TrimSpace(d.Title)+" "+strings.TrimSpace(d.Text)))
	}
	if _, found, err := c.Get(keys); err != nil || found != len(keys) || untrimmed == 0 {
		t.Errorf("cache holds %d of the %d documents' texts (%v); %d untrimmed", found, len(keys), err, untrimmed)
	}
}
