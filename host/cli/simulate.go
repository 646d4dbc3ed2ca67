package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/simulate"
)

func init() {
	var (
		hostURL, dir, split, model string
		cfg                        simulate.Config
		asJSON                     bool
	)
	b := simulate.DefaultBehaviour(simulate.PBM)
	cmd := &cobra.Command{
		Use:   "simulate --host URL --dataset DIR [--split train] --users N --click-model pbm|cascade --seed S [--searches M] [--concurrency C]",
		Short: "Simulated users search and click on a running host through its HTTP API",
		Long: `Simulated users issue the queries of a BEIR dataset split to a running host
(POST /search), examine the results with position bias, click by the split's
relevance judgements with noise, and report each click with a dwell time
(POST /click): their searches and clicks land in the host's click log like
anyone's. Only loopback hosts are accepted.

Click models: pbm examines rank k with probability 1/k^eta, independently;
cascade examines top-down and stops after a satisfying (relevant) click. An
examined result is clicked with --click-relevant if judged relevant (scaled by
grade) and --click-nonrelevant otherwise. The same seed gives the same
queries, users and click decisions at any concurrency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := dataset.OpenBEIR(dir)
			if err != nil {
				return fmt.Errorf("--dataset: %w", err)
			}
			cfg.Queries, cfg.Qrels, err = ds.SplitQueries(split)
			if err != nil {
				return err
			}
			b.Model = simulate.ClickModel(model)
			cfg.Host, cfg.Behaviour = hostURL, b
			total := cfg.Searches
			if total == 0 {
				total = len(cfg.Queries)
			}
			stderr := cmd.ErrOrStderr()
			bar := progressbar.NewOptions(total,
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetVisibility(isTerminal(stderr)),
				progressbar.OptionSetDescription("simulating"),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("searches"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
			)
			cfg.Progress = func(done int) { bar.Set(done) }
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sum, err := simulate.Run(ctx, cfg)
			bar.Finish()
			if sum.Searches+sum.FailedSearches > 0 {
				if asJSON {
					if werr := writeJSONOut(cmd.OutOrStdout(), sum); werr != nil {
						return werr
					}
				} else {
					printSimulation(cmd.OutOrStdout(), cfg, sum)
				}
			}
			if err != nil {
				return err
			}
			if sum.Failed() > 0 {
				return fmt.Errorf("%d searches and %d clicks failed; first: %s", sum.FailedSearches, sum.FailedClicks, sum.FirstError)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hostURL, "host", "", "base URL of the running host, on loopback (e.g. http://127.0.0.1:8080) (required)")
	f.StringVar(&dir, "dataset", "", "BEIR dataset folder: queries.jsonl and qrels/<split>.tsv (required)")
	f.StringVar(&split, "split", "train", "qrels split whose queries are searched and whose judgements drive the clicks")
	f.IntVar(&cfg.Users, "users", 10, "number of distinct simulated users")
	f.StringVar(&model, "click-model", string(simulate.PBM), "pbm or cascade")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of queries, users and clicks")
	f.IntVar(&cfg.Searches, "searches", 0, "searches to run (0: each query of the split once)")
	f.IntVar(&cfg.Concurrency, "concurrency", 4, "users searching at once")
	f.IntVar(&cfg.Size, "size", 10, "results per search")
	f.Float64Var(&b.Eta, "eta", b.Eta, "pbm position-bias exponent: rank k is examined with probability 1/k^eta")
	f.Float64Var(&b.ClickRelevant, "click-relevant", b.ClickRelevant, "click probability of an examined result of the top grade")
	f.Float64Var(&b.ClickNonRelevant, "click-nonrelevant", b.ClickNonRelevant, "click probability of an examined unjudged or grade-0 result (noise)")
	f.Float64Var(&b.StopRelevant, "stop-relevant", b.StopRelevant, "cascade: probability that a relevant click ends the search")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.MarkFlagRequired("host")
	cmd.MarkFlagRequired("dataset")
	rootCmd.AddCommand(cmd)
}

func printSimulation(w io.Writer, cfg simulate.Config, s simulate.Summary) {
	fmt.Fprintf(w, "%d searches by %d users (%s, seed %d) in %s: %d clicks (%d on relevant documents), CTR %.3f, %.1f%% of searches clicked\n",
		s.Searches, cfg.Users, cfg.Behaviour.Model, cfg.Seed, s.Elapsed.Round(time.Millisecond), s.Clicks, s.RelevantClicks,
		s.CTR(), 100*ratio(s.SearchesWithClicks, s.Searches))
	fmt.Fprintf(w, "search latency p50 %s, p99 %s, max %s; reranked %d of %d\n",
		s.LatencyP50.Round(time.Microsecond), s.LatencyP99.Round(time.Microsecond), s.LatencyMax.Round(time.Microsecond), s.Reranked, s.Searches)
	for _, v := range sortedKeys(s.Versions) {
		name := v
		if name == "" {
			name = "none (BM25 order)"
		}
		fmt.Fprintf(w, "model version %s: %d searches\n", name, s.Versions[v])
	}
	if s.NotLogged > 0 {
		fmt.Fprintf(w, "%d searches were not logged by the host, so were not clicked\n", s.NotLogged)
	}
	if s.Failed() > 0 {
		fmt.Fprintf(w, "failed: %d searches, %d clicks; first: %s\n", s.FailedSearches, s.FailedClicks, s.FirstError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RANK\tSHOWN\tCLICKS\tCTR\t")
	for i, shown := range s.ShownByRank {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.3f\t\n", i+1, shown, s.ClicksByRank[i], ratio(s.ClicksByRank[i], shown))
	}
	tw.Flush()
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
