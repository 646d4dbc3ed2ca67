package cli

import (
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
)

func init() {
	var hf hostFlags
	exp := &cobra.Command{
		Use:   "experiment",
		Short: "Compare two model versions online on a running host: interleaving or a split by user",
		Long: `Both versions are served by the host's one plugin process (the one not
serving is loaded beside the serving model).

interleave: every search in the experiment (--traffic of them) is reranked by
both versions and the two lists are merged by team-draft interleaving (a coin
per round, seeded by the search id; documents both place next credit no one);
each shown result's team is logged, clicks credit teams, every search with
clicks is a treatment win, a control win or a tie. The sign test of wins
against losses gives p; the stopping rule waits for --min-searches searches
with clicks and stops at p < --alpha.

split: users (or, without a user id, sessions) are hashed into the arms; each
arm's users see its version; click metrics (CTR, clicks@k, MRR of the first
click, abandonment) per arm, and a test of the MRR difference.

The host needs admin_token; every subcommand takes --host and --token.`,
	}
	hf.add(exp.PersistentFlags(), true)

	var (
		spec     lifecycle.ExperimentSpec
		method   string
		minS     int
		maxS     int
		alpha    float64
		traffic  float64
		showJSON bool
	)
	start := &cobra.Command{
		Use:   "start --control V1 --treatment V2 --method interleave|split [--traffic 0.5] --host URL",
		Short: "Start an experiment between two registered versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := hf.client()
			if err != nil {
				return err
			}
			body := map[string]any{"control": spec.Control, "treatment": spec.Treatment, "method": method, "traffic": traffic}
			f := cmd.Flags()
			if f.Changed("min-searches") {
				body["min_searches"] = minS
			}
			if f.Changed("alpha") {
				body["alpha"] = alpha
			}
			if f.Changed("max-searches") {
				body["max_searches"] = maxS
			}
			var e interleave.Experiment
			if err := c.call(cmd.Context(), http.MethodPost, "/admin/experiments", body, &e); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "started %s: %s, control %s vs treatment %s, %.0f%% of %s; stop rule: %s\n",
				e.ID, e.Method, e.Control, e.Treatment, 100*e.Traffic, trafficUnit(e.Method), e.Rule)
			return nil
		},
	}
	sf := start.Flags()
	sf.StringVar(&spec.Control, "control", "", "the incumbent version (required)")
	sf.StringVar(&spec.Treatment, "treatment", "", "the challenger version (required)")
	sf.StringVar(&method, "method", string(interleave.MethodInterleave), "interleave or split")
	sf.Float64Var(&traffic, "traffic", 0.5, "share of searches (interleave) or users (split) in the experiment")
	sf.IntVar(&minS, "min-searches", 0, "stopping rule: informative searches before any verdict (default: experiment.min_searches)")
	sf.Float64Var(&alpha, "alpha", 0, "stopping rule: p-value that declares a winner (default: experiment.alpha)")
	sf.IntVar(&maxS, "max-searches", 0, "stopping rule: stop without a winner after this many (default: experiment.max_searches)")
	start.MarkFlagRequired("control")
	start.MarkFlagRequired("treatment")

	status := &cobra.Command{
		Use:   "status [ID] --host URL",
		Short: "The running experiment (or ID) with its tally, p-value and the stopping rule's verdict",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := hf.client()
			if err != nil {
				return err
			}
			var v lifecycle.ExperimentView
			if err := c.call(cmd.Context(), http.MethodGet, "/admin/experiments/"+idOrCurrent(args), nil, &v); err != nil {
				return err
			}
			if showJSON {
				return writeJSONOut(cmd.OutOrStdout(), v)
			}
			printExperiment(cmd.OutOrStdout(), v)
			return nil
		},
	}
	status.Flags().BoolVar(&showJSON, "json", false, "print the experiment as JSON")

	var reason string
	stop := &cobra.Command{
		Use:   "stop [ID] [--reason TEXT] --host URL",
		Short: "Stop the running experiment (or ID), recording its final tally",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := hf.client()
			if err != nil {
				return err
			}
			var v lifecycle.ExperimentView
			if err := c.call(cmd.Context(), http.MethodPost, "/admin/experiments/"+idOrCurrent(args)+"/stop", map[string]string{"reason": reason}, &v); err != nil {
				return err
			}
			printExperiment(cmd.OutOrStdout(), v)
			return nil
		},
	}
	stop.Flags().StringVar(&reason, "reason", "", "why, kept with the experiment (default: the tally's verdict)")

	list := &cobra.Command{
		Use:   "list --host URL",
		Short: "Every experiment, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := hf.client()
			if err != nil {
				return err
			}
			var all struct {
				Experiments []lifecycle.ExperimentView `json:"experiments"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, "/admin/experiments", nil, &all); err != nil {
				return err
			}
			if len(all.Experiments) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no experiments")
			}
			for _, v := range all.Experiments {
				printExperiment(cmd.OutOrStdout(), v)
				fmt.Fprintln(cmd.OutOrStdout())
			}
			return nil
		},
	}
	exp.AddCommand(start, status, stop, list, evaluateLogCommand())
	rootCmd.AddCommand(exp)
}

func idOrCurrent(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "current"
}

func trafficUnit(m interleave.Method) string {
	if m == interleave.MethodSplit {
		return "users"
	}
	return "searches"
}

// printExperiment shows an experiment and its tally (live or final).
func printExperiment(w io.Writer, v lifecycle.ExperimentView) {
	e := v.Experiment
	fmt.Fprintf(w, "%s (%s): %s, control %s vs treatment %s, %.0f%% of %s, started %s",
		e.ID, e.Status, e.Method, e.Control, e.Treatment, 100*e.Traffic, trafficUnit(e.Method), e.Started.Local().Format(time.DateTime))
	if !e.Stopped.IsZero() {
		fmt.Fprintf(w, ", stopped %s (%s)", e.Stopped.Local().Format(time.DateTime), e.StopReason)
	}
	fmt.Fprintln(w)
	res := v.Live
	if res == nil {
		res = e.Result
	}
	if res == nil {
		fmt.Fprintln(w, "no tally recorded")
		return
	}
	printTally(w, e, res)
}

// printTally shows an experiment's tally and the stopping rule's verdict.
func printTally(w io.Writer, e interleave.Experiment, res *interleave.Result) {
	if il := res.Interleave; il != nil {
		fmt.Fprintf(w, "%d interleaved searches, %d with clicks: treatment wins %d, ties %d, control wins %d\n",
			il.Searches, il.Clicked, il.TreatmentWins, il.Ties, il.ControlWins)
		fmt.Fprintf(w, "clicked results: control %d, treatment %d, shared %d; preference delta %+.3f (treatment > 0); sign test p = %.3g\n",
			il.ClicksControl, il.ClicksTreatment, il.ClicksShared, il.Delta, il.PValue)
	}
	if s := res.Split; s != nil {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "arm\tsearches\tCTR\tclicks@%d\tMRR\tabandonment\n", s.Control.K)
		for _, a := range []struct {
			name string
			m    interleave.ArmMetrics
		}{{"control " + e.Control, s.Control}, {"treatment " + e.Treatment, s.Treatment}} {
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\n", a.name, a.m.Searches, a.m.CTR, a.m.ClicksAtK, a.m.MRR, a.m.Abandonment)
		}
		tw.Flush()
		fmt.Fprintf(w, "MRR difference %+.4f (treatment - control), p = %.3g\n", s.MRRDiff, s.PValue)
	}
	win := ""
	if res.Verdict.Winner != "" {
		win = fmt.Sprintf("winner %s; ", res.Verdict.Winner)
	}
	fmt.Fprintf(w, "stopping rule (%s): %s%s\n", e.Rule, win, res.Verdict.Reason)
}
