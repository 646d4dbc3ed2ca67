package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/evalharness/compare"
	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/evalharness/report"
)

func init() {
	var (
		candidate, serving, out string
		asJSON                  bool
		policy                  = gate.DefaultPolicy()
	)
	cmd := &cobra.Command{
		Use:   "gate --candidate EVAL.json [--serving EVAL.json] [--margin 0.005] [--alpha 0.05]",
		Short: "Decide from saved `rerank eval --json` results whether a candidate may replace the serving model",
		Long: fmt.Sprintf(`Apply the swap gate to per-query NDCG@10 saved by rerank eval --json.

The candidate is the --candidate file's model (its --model). The serving model is
the --serving file's model; without --serving, the candidate file's
--baseline-model if it has one, else BM25 alone (nothing served yet). BM25 is the
candidate file's first stage. Both files must hold the same queries.

The candidate is accepted when all hold:
  mean NDCG@10 gain over serving >= --margin        (default %g)
  paired randomization test p-value < --alpha       (default %g)
  mean NDCG@10 >= BM25 alone's, on the same queries   (--bm25-floor, default on)
The decision, with its numbers, is printed (--json: as JSON) and written to --out.
Exit status 1 when the candidate is rejected.`, gate.DefaultMargin, gate.DefaultAlpha),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := decide(candidate, serving, policy)
			if err != nil {
				return err
			}
			if out != "" {
				if err := writeFileWith(out, func(w io.Writer) error { return writeDecision(w, d) }); err != nil {
					return err
				}
			}
			if asJSON {
				if err := writeDecision(cmd.OutOrStdout(), d); err != nil {
					return err
				}
			} else {
				printDecision(cmd.OutOrStdout(), d)
			}
			if !d.Accepted {
				return fmt.Errorf("candidate rejected")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&candidate, "candidate", "", "rerank eval --json output holding the candidate (--model) (required)")
	f.StringVar(&serving, "serving", "", "rerank eval --json output holding the serving model")
	f.Float64Var(&policy.Margin, "margin", gate.DefaultMargin, "minimum mean NDCG@10 gain over serving")
	f.Float64Var(&policy.Alpha, "alpha", gate.DefaultAlpha, "significance level of the paired randomization test")
	f.IntVar(&policy.Resamples, "resamples", compare.DefaultResamples, "randomization rounds and bootstrap resamples")
	f.Uint64Var(&policy.Seed, "seed", 1, "resampling seed")
	f.BoolVar(&policy.BM25Floor, "bm25-floor", true, "reject a candidate below BM25 alone")
	f.BoolVar(&asJSON, "json", false, "print the decision as JSON")
	f.StringVar(&out, "out", "", "also write the decision as JSON to this file")
	rootCmd.AddCommand(cmd)
}

const gateMetric = "ndcg@10"

func decide(candidatePath, servingPath string, p gate.Policy) (gate.Decision, error) {
	if candidatePath == "" {
		return gate.Decision{}, fmt.Errorf("--candidate is required")
	}
	cand, err := report.Load(candidatePath)
	if err != nil {
		return gate.Decision{}, err
	}
	c, ok := cand.System(report.Candidate)
	if !ok {
		return gate.Decision{}, fmt.Errorf("%s holds no candidate model: run rerank eval with --model", candidatePath)
	}
	bm25 := cand.Systems[0]
	var serving map[string]float64
	switch {
	case servingPath != "":
		srv, err := report.Load(servingPath)
		if err != nil {
			return gate.Decision{}, err
		}
		if srv.Dataset != cand.Dataset || srv.Split != cand.Split {
			return gate.Decision{}, fmt.Errorf("%s evaluates %s (%s), %s evaluates %s (%s): the gate needs the same queries",
				candidatePath, cand.Dataset, cand.Split, servingPath, srv.Dataset, srv.Split)
		}
		if s := srv.Best(); s.Role != report.FirstStage {
			serving = s.PerQuery[gateMetric]
		}
	default:
		if b, ok := cand.System(report.Baseline); ok {
			serving = b.PerQuery[gateMetric]
		}
	}
	return gate.Decide(c.PerQuery[gateMetric], serving, bm25.PerQuery[gateMetric], p)
}

func writeDecision(w io.Writer, d gate.Decision) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	return enc.Encode(d)
}

func printDecision(w io.Writer, d gate.Decision) {
	serving := "serving"
	if d.ServingIsBM25 {
		serving = "serving (BM25 alone)"
	}
	fmt.Fprintf(w, "%s on %d queries: candidate %.4f, %s %.4f, BM25 %.4f\n", d.Metric, d.Queries, d.CandidateMean, serving, d.ServingMean, d.BM25Mean)
	for _, c := range d.Checks {
		mark := "FAIL"
		if c.Passed {
			mark = "ok"
		}
		fmt.Fprintf(w, "  %-4s %-20s %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintln(w, d.Reason)
}
