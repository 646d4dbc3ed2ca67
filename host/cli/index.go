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
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/search"
)

func init() {
	var corpus, analyzer string
	var batch int
	cmd := &cobra.Command{
		Use:   "index --dataset DIR|FILE [--index DIR]",
		Short: "Build the BM25 search index from a BEIR folder or a JSONL file of documents",
		Long: `Build the on-disk BM25 index the server searches.

--dataset is a BEIR folder (its corpus.jsonl is read) or a JSONL file with one
document a line: {"_id", "title", "text"}. Title and text are searched together.
The index is built beside --index and swapped in only when complete: an
interrupted or failed build leaves the previous index as it was. A running
server keeps serving the index it opened until restarted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(cmd.Flags())
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("analyzer") {
				analyzer = cfg.BM25.Analyzer
			}
			path, err := corpusPath(corpus)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return buildIndex(ctx, path, cfg.IndexDir, analyzer, batch, cmd.ErrOrStderr(), cmd.OutOrStdout())
		},
	}
	configs.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&corpus, "dataset", "", "BEIR folder or JSONL file of documents (required)")
	cmd.Flags().StringVar(&analyzer, "analyzer", "", "en (stemming) or standard (default: bm25.analyzer, en)")
	cmd.Flags().IntVar(&batch, "batch", 1000, "documents per index batch")
	cmd.MarkFlagRequired("dataset")
	rootCmd.AddCommand(cmd)
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
