package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/report"
	"github.com/rerankloop/rerank/evalharness/trec"
	"github.com/rerankloop/rerank/host/opensearch"
)

const (
	nodeScripts = "../opensearch/node"
	tinyModel   = "../../plugin/testdata/tiny-ce"
	osIndex     = "scifact"
)

// node is a running OpenSearch node started by start.sh.
type node struct {
	url     string
	client  *opensearch.Client
	started time.Duration
}

// startNode starts the pinned node, or skips the test (with the reason) where
// Java or the fetched artifacts are missing; fetch.sh and .ci/run get them.
// The node is stopped when the test ends, failed or not.
func startNode(t *testing.T) *node {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("no java on PATH: the OpenSearch tests need openjdk-17-jre-headless (.ci/run installs it)")
	}
	cache := os.Getenv("RERANK_OPENSEARCH_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "rerank-opensearch")
	}
	if zips, _ := filepath.Glob(filepath.Join(cache, "zips", "*.zip")); len(zips) < 5 {
		t.Skipf("the OpenSearch artifacts are not in %s: run host/opensearch/node/fetch.sh (.ci/run does)", cache)
	}
	port := freePort(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second) // start.sh waits 120 s for health
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(nodeScripts, "start.sh"), strconv.Itoa(port))
	// A test binary killed (a timeout) before its cleanups still stops the node.
	cmd.Env = append(os.Environ(), "RERANK_OPENSEARCH_OWNER="+strconv.Itoa(os.Getpid()))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("start.sh: %v\n%s", err, stderr)
	}
	run, url, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok {
		t.Fatalf("start.sh printed %q, want RUN_DIR URL", out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(filepath.Join(nodeScripts, "stop.sh"), run).CombinedOutput(); err != nil {
			t.Errorf("stop.sh: %v\n%s", err, out)
		}
	})
	c, err := opensearch.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return &node{url: url, client: c, started: time.Since(start)}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRerankOnly runs `rerank serve --rerank-only` with the tiny model in a
// child process and returns its base URL.
func startRerankOnly(t *testing.T, plugin, data, model string) string {
	t.Helper()
	return serveAddr(t, rerankOnlyCmd(t, plugin, data, model))
}

// rerankOnlyCmd is that child, not started.
func rerankOnlyCmd(t *testing.T, plugin, data, model string) *exec.Cmd {
	cmd := rerank(t, "serve", "--rerank-only", "--listen", "127.0.0.1:0", "--data-dir", data)
	cmd.Env = append(cmd.Env, "RERANK_RERANK_MODEL_PATH="+model, "RERANK_RERANK_PLUGIN_PATH="+plugin,
		"RERANK_RERANK_DEVICE=cpu", "RERANK_ADMIN_TOKEN=test-admin")
	return cmd
}

// rerankCalls is how many /v1/rerank requests the host answered with 200.
func rerankCalls(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`rerank_http_requests_total\{code="200",handler="v1_rerank"\} (\d+)`).FindSubmatch(raw)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// indexSample puts the SciFact sample into the node, each document's text
// being what our index and evaluation score (title and abstract).
func indexSample(t *testing.T, c *opensearch.Client) {
	t.Helper()
	var docs []opensearch.Doc
	err := dataset.ReadCorpus(filepath.Join(sampleCorpus, "corpus.jsonl"), func(d dataset.Doc) error {
		docs = append(docs, opensearch.Doc{ID: d.ID, Source: map[string]string{"title": d.Title, "text": dataset.DocText(d.Title, d.Text)}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bulk(context.Background(), osIndex, docs); err != nil {
		t.Fatal(err)
	}
}

// hitText is a hit's text field.
func hitText(t *testing.T, h opensearch.Hit) string {
	t.Helper()
	var src struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(h.Source, &src); err != nil {
		t.Fatal(err)
	}
	return src.Text
}

// cohereRerank asks our /v1/rerank directly, for the order the pipeline must show.
func cohereRerank(t *testing.T, base, query string, docs []string) []int {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"query": query, "documents": docs})
	resp, err := http.Post(base+"/v1/rerank", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Index int `json:"index"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/v1/rerank: %d %v", resp.StatusCode, err)
	}
	order := make([]int, len(out.Results))
	for i, r := range out.Results {
		order[i] = r.Index
	}
	return order
}

// rerankStage starts a node holding the SciFact sample and a rerank-only
// host with the tiny model whose /v1/rerank the node's pipeline "rerankloop"
// calls; it returns the node, the plugin binary and the host's URL.
func rerankStage(t *testing.T) (nd *node, plugin, host string) {
	t.Helper()
	nd = startNode(t)
	plugin = buildPlugin(t)
	host = startRerankOnly(t, plugin, t.TempDir(), tinyModel)
	ctx := context.Background()
	indexSample(t, nd.client)
	stage, err := nd.client.CreateRerankStage(ctx, "rerankloop", host+"/v1/rerank", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.client.PutRerankPipeline(ctx, "rerankloop", stage.ModelID, "text"); err != nil {
		t.Fatal(err)
	}
	return nd, plugin, host
}

// TestOpenSearchRerankStage runs a real OpenSearch node whose search pipeline
// calls a real `rerank serve --rerank-only` (tiny model, real plugin): the
// hits come back in our order, and NDCG@10 of the sample's test queries
// through OpenSearch equals `rerank eval` on the same candidates.
func TestOpenSearchRerankStage(t *testing.T) {
	nd, plugin, host := rerankStage(t)
	t.Logf("OpenSearch 2.19.1 node healthy %.1f s after start.sh", nd.started.Seconds())
	fmt.Printf("opensearch e2e: node start %.1f s\n", nd.started.Seconds())
	ctx := context.Background()
	c := nd.client

	queries, qrels := testQueries(t)
	const window = 20
	var (
		js       []dataset.Judgment
		viaNode  = trec.Run{}
		before   = rerankCalls(t, host)
		searched = 0
	)
	for _, q := range queries {
		bm25, err := c.Search(ctx, osIndex, "", opensearch.MatchQuery("text", q.Text, window, false))
		if err != nil {
			t.Fatal(err)
		}
		if len(bm25.Hits.Hits) == 0 {
			continue
		}
		reranked, err := c.Search(ctx, osIndex, "rerankloop", opensearch.MatchQuery("text", q.Text, window, true))
		if err != nil {
			t.Fatal(err)
		}
		searched++
		var texts []string
		for _, h := range bm25.Hits.Hits {
			texts = append(texts, hitText(t, h))
			js = append(js, dataset.Judgment{QueryID: q.ID, Query: q.Text, DocID: h.ID, Text: hitText(t, h), Label: qrels[q.ID][h.ID]})
		}
		// The pipeline shows BM25's hits in the order our /v1/rerank gives them.
		var want, got []string
		for _, i := range cohereRerank(t, host, q.Text, texts) {
			want = append(want, bm25.Hits.Hits[i].ID)
		}
		run := map[string]float64{}
		for i, h := range reranked.Hits.Hits {
			got = append(got, h.ID)
			run[h.ID] = float64(len(reranked.Hits.Hits) - i) // OpenSearch's order, exactly
		}
		if !slices.Equal(got, want) {
			t.Fatalf("query %s: through OpenSearch %v, our /v1/rerank %v", q.ID, got, want)
		}
		viaNode[q.ID] = run
	}
	// One /v1/rerank call per search through the pipeline; the direct calls
	// above are the other half.
	calls := rerankCalls(t, host) - before
	if calls != 2*searched {
		t.Errorf("our server answered %d /v1/rerank calls for %d searches through the pipeline and %d direct ones", calls, searched, searched)
	}

	// rerank eval on the same candidates (a judgments file of BM25's hits, in
	// OpenSearch's BM25 order) with the same model.
	file := filepath.Join(t.TempDir(), "candidates.jsonl")
	writeJudgments(t, file, js)
	out, err := evalCLI(t, "eval", "--dataset", file, "--model", tinyModel, "--plugin", plugin, "--device", "cpu", "--json")
	if err != nil {
		t.Fatalf("rerank eval: %v\n%s", err, out)
	}
	var res report.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	evalNDCG := math.NaN()
	for _, s := range res.Systems {
		if s.Role == report.Candidate {
			evalNDCG = s.Means["ndcg@10"]
		}
	}
	per, err := metrics.Evaluate(viaNode, dataset.JudgmentQrels(js), metrics.Measure{Kind: metrics.NDCG, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	nodeNDCG := metrics.Mean(per["ndcg@10"])
	summary := fmt.Sprintf("opensearch e2e: %d test queries, window %d: our server received %d /v1/rerank calls from the pipeline (and %d direct ones); NDCG@10 through OpenSearch %.6f, rerank eval %.6f",
		searched, window, calls-searched, searched, nodeNDCG, evalNDCG)
	t.Log(summary)
	fmt.Println(summary)
	if math.Abs(nodeNDCG-evalNDCG) > 1e-9 || res.Queries != searched {
		t.Fatalf("NDCG@10 through OpenSearch %v, rerank eval %v over %d queries (want %d)", nodeNDCG, evalNDCG, res.Queries, searched)
	}

	t.Run("RefusedConnector", func(t *testing.T) {
		// A connector to a port where nothing listens: the search fails and says so.
		dead := fmt.Sprintf("http://127.0.0.1:%d/v1/rerank", freePort(t))
		st, err := c.CreateRerankStage(ctx, "dead", dead, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PutRerankPipeline(ctx, "dead", st.ModelID, "text"); err != nil {
			t.Fatal(err)
		}
		_, err = c.Search(ctx, osIndex, "dead", opensearch.MatchQuery("text", "vitamin d", 5, true))
		var oe *opensearch.Error
		if !errors.As(err, &oe) || oe.Status < 400 {
			t.Fatalf("search through a refused connector: %v", err)
		}
		t.Logf("refused connector: %v", err)
	})
	createUBIIndices(t, c)
	t.Run("UBIImport", func(t *testing.T) { testUBIImport(t, c, plugin, queries, qrels) })
	t.Run("Experiment", func(t *testing.T) { testClusterExperiment(t, c, plugin, queries, qrels) })
}

func testQueries(t *testing.T) ([]dataset.Query, dataset.Qrels) {
	t.Helper()
	b, err := dataset.OpenBEIR(sampleCorpus)
	if err != nil {
		t.Fatal(err)
	}
	qs, qrels, err := b.SplitQueries("test")
	if err != nil {
		t.Fatal(err)
	}
	return qs, qrels
}

func writeJudgments(t *testing.T, path string, js []dataset.Judgment) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, j := range js {
		enc.Encode(map[string]any{"query_id": j.QueryID, "query": j.Query, "doc_id": j.DocID, "text": j.Text, "label": j.Label})
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
