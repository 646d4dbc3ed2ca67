package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/embcache"
)

func init() {
	var (
		corpus, analyzer, model, cacheDir string
		batch, embedBatch                 int
		embedOnly                         bool
		opts                              pluginclient.Options
	)
	cmd := &cobra.Command{
		Use:   "index --dataset DIR|FILE [--index DIR] [--model BI_ENCODER_DIR [--embed-only]]",
		Short: "Build the BM25 search index, and optionally precompute a bi-encoder's document embeddings",
		Long: `Build the on-disk BM25 index the server searches.

--dataset is a BEIR folder (its corpus.jsonl is read) or a JSONL file with one
document a line: {"_id", "title", "text"}. Title and text are searched together.
The index is built beside --index and swapped in only when complete: an
interrupted or failed build leaves the previous index as it was. A running
server keeps serving the index it opened until restarted.

--model BI_ENCODER_DIR also precomputes the embedding of every document of
--dataset with that bi-encoder (see rerank model init --kind bi-encoder), so
that searches only embed their query. The BM25 index is built first, as
without --model; --embed-only skips that step and leaves the index as it is
(when it is already built from the same documents, e.g. after switching to
another model). Each document is embedded as the server sends it to the
reranker (title + " " + text) into the model's cache file under
--embedding-cache, the folder rerank serve reads. Documents already cached are
not embedded again, so an interrupted run continues where it stopped and a
second run is quick. The cache file is locked while a plugin has the model
loaded: stop a server that serves the same model first. A cross-encoder is
refused: it scores each (query, document) pair at search time and has nothing
to precompute.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(cmd.Flags())
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("analyzer") {
				analyzer = cfg.BM25.Analyzer
			}
			if !cmd.Flags().Changed("embedding-cache") {
				cacheDir = filepath.Join(cfg.DataDir, "embeddings")
			}
			switch {
			case embedOnly && model == "":
				return fmt.Errorf("--embed-only needs --model")
			case embedBatch < 1:
				return fmt.Errorf("--embed-batch %d: want at least 1", embedBatch)
			}
			var ck checkpoint.Config
			if model != "" {
				// Refuse a cross-encoder before the BM25 build; the plugin
				// checks again once it has loaded the model.
				if ck, err = checkpoint.ReadConfig(model); err != nil {
					return fmt.Errorf("--model: %w", err)
				}
				switch ck.Kind {
				case checkpoint.BiEncoder:
				case checkpoint.Encoder: // the plugin loads it as a cross-encoder with a fresh head
					return notBiEncoder(model, "plain encoder (the plugin loads it as a cross-encoder)")
				default:
					return notBiEncoder(model, ck.Kind.String())
				}
			}
			path, err := corpusPath(corpus)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if !embedOnly {
				if err := buildIndex(ctx, path, cfg.IndexDir, analyzer, batch, cmd.ErrOrStderr(), cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			if model == "" {
				return nil
			}
			opts.ModelPath, opts.EmbeddingCache = "", cacheDir
			e := embedder{opts: opts, model: model, dim: ck.Sentence.Dim, corpus: path, batch: embedBatch,
				stderr: cmd.ErrOrStderr(), stdout: cmd.OutOrStdout()}
			docs, err := e.run(ctx)
			if err != nil {
				return err
			}
			if embedOnly {
				checkIndexDocs(cfg.IndexDir, docs, cmd.OutOrStdout())
			}
			return nil
		},
	}
	configs.AddFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&corpus, "dataset", "", "BEIR folder or JSONL file of documents (required)")
	f.StringVar(&analyzer, "analyzer", "", "en (stemming) or standard (default: bm25.analyzer, en)")
	f.IntVar(&batch, "batch", 1000, "documents per index batch")
	f.StringVar(&model, "model", "", "a bi-encoder folder: precompute its embedding of every document")
	f.StringVar(&cacheDir, "embedding-cache", "", "folder of the bi-encoders' embedding caches (default <data-dir>/embeddings, as rerank serve)")
	f.BoolVar(&embedOnly, "embed-only", false, "with --model: only precompute embeddings, leave the BM25 index as it is")
	f.IntVar(&embedBatch, "embed-batch", 64, "documents per request to the plugin while embedding")
	pluginFlags(f, &opts)
	cmd.MarkFlagRequired("dataset")
	rootCmd.AddCommand(cmd)
}

func notBiEncoder(model, kind string) error {
	return fmt.Errorf("--model %s is a %s, not a bi-encoder: only a bi-encoder's document embeddings can be precomputed "+
		"(a cross-encoder reads each query with each document at search time); "+
		"make one with rerank model init --kind bi-encoder --from ENCODER --out DIR", model, kind)
}

// corpusPath is the corpus file of a BEIR folder, or the file itself.
func corpusPath(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("--dataset: %w", err)
	}
	if !st.IsDir() {
		return p, nil
	}
	c := filepath.Join(p, "corpus.jsonl")
	if _, err := os.Stat(c); err != nil {
		return "", fmt.Errorf("--dataset %s: a folder must hold corpus.jsonl (BEIR layout): %w", p, err)
	}
	return c, nil
}

func buildIndex(ctx context.Context, path, dir, analyzer string, batch int, stderr, stdout io.Writer) error {
	total, err := countLines(path)
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetVisibility(isTerminal(stderr)),
		progressbar.OptionSetDescription("indexing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
	)
	start := time.Now()
	err = search.Build(ctx, dir, func(fn func(dataset.Doc) error) error { return dataset.ReadCorpus(path, fn) },
		search.Options{Analyzer: analyzer, BatchSize: batch, ExpectedDocs: total},
		func(done, _ int) { bar.Set(done) })
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return fmt.Errorf("indexing interrupted; %s is unchanged", dir)
		}
		return err
	}
	bar.Finish()
	ix, err := search.Open(dir)
	if err != nil {
		return err
	}
	defer ix.Close()
	m := ix.Meta()
	fmt.Fprintf(stdout, "indexed %d documents from %s into %s in %s (analyzer %s)\n",
		m.Docs, path, dir, time.Since(start).Round(time.Millisecond), m.Analyzer)
	return nil
}

// countLines counts non-blank lines, the progress bar's total (a close
// upper bound on the documents).
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	n := 0
	blank := true
	for {
		chunk, err := r.ReadSlice('\n')
		if len(bytes.TrimSpace(chunk)) > 0 {
			blank = false
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(chunk) > 0 && (chunk[len(chunk)-1] == '\n' || err == io.EOF) {
			if !blank {
				n++
			}
			blank = true
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// embedder precomputes a bi-encoder's embeddings of a corpus through the
// plugin, which keeps them in the model's embedding cache file.
type embedder struct {
	opts   pluginclient.Options
	model  string
	dim    int
	corpus string
	batch  int
	stderr io.Writer
	stdout io.Writer
}

// embedQuery is the query of the embedding requests: a bi-encoder embeds
// each document on its own, so the query only costs one short text a call.
const embedQuery = "embed"

// run embeds every document of the corpus not yet in the cache and returns
// the number of documents read. It starts the plugin twice: once to load
// the model and learn its cache file, then (after the host has looked up
// which documents that file already holds) to embed the others.
func (e *embedder) run(ctx context.Context) (int, error) {
	start := time.Now()
	info, err := e.load(ctx, func(*pluginclient.Client) error { return nil })
	if err != nil {
		return 0, err
	}
	cached, docs, before, err := e.lookup(info.EmbeddingCache)
	if err != nil {
		return 0, err
	}
	missing := 0
	for _, c := range cached {
		if !c {
			missing++
		}
	}
	var embedTime time.Duration
	if missing > 0 {
		t := time.Now()
		if _, err := e.load(ctx, func(c *pluginclient.Client) error { return e.embed(ctx, c, cached, missing) }); err != nil {
			return 0, err
		}
		embedTime = time.Since(t)
	}
	c, err := e.openCache(info.EmbeddingCache)
	if err != nil {
		return 0, err
	}
	after, err := c.Len()
	c.Close()
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(info.EmbeddingCache)
	if err != nil {
		return 0, err
	}
	fresh := after - before
	fmt.Fprintf(e.stdout, "embedded %d documents with %s (version %s, %s, dimension %d): %d already cached, %d newly embedded",
		docs, e.model, info.Version, info.Kind, e.dim, docs-missing, fresh)
	if embedTime > 0 {
		fmt.Fprintf(e.stdout, " in %s (%.1f docs/s)", embedTime.Round(time.Millisecond), float64(missing)/embedTime.Seconds())
	}
	if dup := missing - fresh; dup > 0 {
		fmt.Fprintf(e.stdout, "; %d repeat the text of another document", dup)
	}
	fmt.Fprintf(e.stdout, "; %s in all\n", time.Since(start).Round(time.Millisecond))
	perVec := 0.0
	if after > 0 {
		perVec = float64(st.Size()) / float64(after)
	}
	fmt.Fprintf(e.stdout, "embedding cache %s: %d bytes, %d embeddings, %.0f bytes/document\n", info.EmbeddingCache, st.Size(), after, perVec)
	return docs, nil
}

// load starts the plugin, loads the model, checks that it is a bi-encoder,
// runs fn and stops the plugin (which releases the cache file).
func (e *embedder) load(ctx context.Context, fn func(*pluginclient.Client) error) (contract.ModelInfo, error) {
	c, err := pluginclient.Start(ctx, e.opts)
	if err != nil {
		return contract.ModelInfo{}, err
	}
	defer c.Close()
	info, err := c.Load(ctx, contract.LoadRequest{Path: e.model, Serve: true})
	if err != nil {
		if strings.Contains(err.Error(), embcache.ErrLocked.Error()) {
			err = fmt.Errorf("%w\n(another process, e.g. a running rerank serve, has this model loaded: stop it, or pass another --embedding-cache)", err)
		}
		return info, fmt.Errorf("loading %s: %w", e.model, err)
	}
	if info.Kind != checkpoint.BiEncoder.String() {
		return info, notBiEncoder(e.model, info.Kind)
	}
	if info.EmbeddingCache == "" {
		return info, fmt.Errorf("the plugin reports no embedding cache for %s", e.model)
	}
	return info, fn(c)
}

// openCache opens the model's cache file while no plugin holds it.
func (e *embedder) openCache(path string) (*embcache.Cache, error) {
	c, err := embcache.Open(filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), embcache.Ext), e.dim)
	if err != nil && errors.Is(err, embcache.ErrLocked) {
		err = fmt.Errorf("%w\n(another process, e.g. a running rerank serve, has this model loaded: stop it, or pass another --embedding-cache)", err)
	}
	return c, err
}

// lookup reads the corpus and says, for each document in file order,
// whether the cache already holds its text; it also counts the documents
// and the embeddings stored before this run.
func (e *embedder) lookup(path string) (cached []bool, docs, stored int, err error) {
	c, err := e.openCache(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer c.Close()
	if stored, err = c.Len(); err != nil {
		return nil, 0, 0, err
	}
	keys := make([]embcache.Key, 0, 1024)
	flush := func() error {
		vecs, _, err := c.Get(keys)
		if err != nil {
			return err
		}
		for _, v := range vecs {
			cached = append(cached, v != nil)
		}
		keys = keys[:0]
		return nil
	}
	err = dataset.ReadCorpus(e.corpus, func(d dataset.Doc) error {
		keys = append(keys, embcache.KeyOf(dataset.DocText(d.Title, d.Text)))
		if len(keys) == cap(keys) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return cached, len(cached), stored, err
}

// embed sends the documents not cached to the plugin, e.batch at a time,
// with a progress bar on stderr. The plugin embeds and stores each text it
// does not hold yet, so a document that repeats an earlier one's text costs
// only a lookup.
func (e *embedder) embed(ctx context.Context, c *pluginclient.Client, cached []bool, missing int) error {
	bar := progressbar.NewOptions(missing,
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionSetVisibility(isTerminal(e.stderr)),
		progressbar.OptionSetDescription("embedding"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.stderr) }),
	)
	done := 0
	req := contract.RerankRequest{Query: embedQuery}
	send := func() error {
		if err := rerankRetrying(ctx, c, req); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("embedding interrupted after %d of %d documents; those are cached: run again to continue", done, missing)
			}
			return fmt.Errorf("embedding documents %s..%s: %w", req.Documents[0].ID, req.Documents[len(req.Documents)-1].ID, err)
		}
		done += len(req.Documents)
		bar.Set(done)
		req.Documents = req.Documents[:0]
		return nil
	}
	i := 0
	err := dataset.ReadCorpus(e.corpus, func(d dataset.Doc) error {
		defer func() { i++ }()
		if i >= len(cached) {
			return fmt.Errorf("%s changed while it was read (more documents than before)", e.corpus)
		}
		if cached[i] {
			return nil
		}
		req.Documents = append(req.Documents, contract.Document{ID: d.ID, Text: dataset.DocText(d.Title, d.Text)})
		if len(req.Documents) == e.batch {
			return send()
		}
		return nil
	})
	if err == nil && len(req.Documents) > 0 {
		err = send()
	}
	if err != nil {
		return err
	}
	bar.Finish()
	return nil
}

// rerankRetrying sends one embedding request, waiting out a plugin restart
// (the client restarts a crashed plugin and reloads the model) for up to a
// minute.
func rerankRetrying(ctx context.Context, c *pluginclient.Client, req contract.RerankRequest) error {
	for try := 0; ; try++ {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		_, err := c.Rerank(callCtx, req)
		cancel()
		if err == nil || !errors.Is(err, contract.ErrUnavailable) || try >= 60 || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkIndexDocs warns when --embed-only embedded another set of documents
// than the BM25 index holds.
func checkIndexDocs(dir string, docs int, w io.Writer) {
	ix, err := search.Open(dir)
	if err != nil {
		fmt.Fprintf(w, "note: %v\n", err)
		return
	}
	defer ix.Close()
	if n, err := ix.Count(); err == nil && n != docs {
		fmt.Fprintf(w, "note: the BM25 index at %s holds %d documents, the dataset %d: was it built from another dataset?\n", dir, n, docs)
	}
}
