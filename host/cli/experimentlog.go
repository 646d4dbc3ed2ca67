package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
)

// evaluateLogCommand is `rerank experiment evaluate`: an experiment's tally
// read from a click log, such as one `rerank logs import-ubi` filled from a
// cluster whose application ran the arms through two search pipelines.
func evaluateLogCommand() *cobra.Command {
	var (
		e             interleave.Experiment
		method, since string
		showJSON      bool
		minS, maxS    int
		alpha         float64
	)
	cmd := &cobra.Command{
		Use:   "evaluate --experiment ID --method split|interleave [--data-dir DIR] [--since T]",
		Short: "Tally an experiment from the click log (e.g. a cluster's UBI logs after logs import-ubi), without a running host",
		Long: `Read the searches logged under experiment ID (arm "<ID>:control",
"<ID>:treatment" or "<ID>:interleaved"; import-ubi takes them from
query_attributes.experiment and .arm, and an interleaved search's teams from
query_attributes.teams) and tally them as the host does for a running
experiment: per-arm CTR, clicks@k, MRR and abandonment for split, team-draft
wins and the sign test for interleave, with the stopping rule's verdict.
Stop "rerank serve" on the same data folder first (one process opens the log).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if e.ID == "" {
				return fmt.Errorf("--experiment is required")
			}
			e.Method = interleave.Method(method)
			if e.Method != interleave.MethodSplit && e.Method != interleave.MethodInterleave {
				return fmt.Errorf("--method %q: want split or interleave", method)
			}
			cfg, err := configs.Load(cmd.Flags())
			if err != nil {
				return err
			}
			e.Rule = interleave.StopRule{MinSearches: cfg.Experiment.MinSearches, Alpha: cfg.Experiment.Alpha, MaxSearches: cfg.Experiment.MaxSearches}
			f := cmd.Flags()
			if f.Changed("min-searches") {
				e.Rule.MinSearches = minS
			}
			if f.Changed("alpha") {
				e.Rule.Alpha = alpha
			}
			if f.Changed("max-searches") {
				e.Rule.MaxSearches = maxS
			}
			if err := e.Rule.Check(); err != nil {
				return err
			}
			if e.Started, err = parseSince(since, time.Now()); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			store, err := openClickLogOf(cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			res, err := interleave.Evaluate(ctx, store, e, cfg.Search.DefaultSize)
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSONOut(cmd.OutOrStdout(), lifecycle.ExperimentView{Experiment: e, Live: &res})
			}
			from := "the start of the log"
			if since != "" {
				from = e.Started.Local().Format(time.DateTime)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s from the click log: %s, control %s vs treatment %s, searches since %s\n", e.ID, e.Method, e.Control, e.Treatment, from)
			printTally(cmd.OutOrStdout(), e, &res)
			return nil
		},
	}
	fl := cmd.Flags()
	configs.AddFlags(fl)
	fl.StringVar(&e.ID, "experiment", "", "experiment id, as logged in the searches' arm (required)")
	fl.StringVar(&method, "method", "", "split or interleave (required)")
	fl.StringVar(&e.Control, "control", "control", "name to show for the control arm (e.g. its model version)")
	fl.StringVar(&e.Treatment, "treatment", "treatment", "name to show for the treatment arm")
	fl.StringVar(&since, "since", "", "only searches from this time on (RFC 3339, a date, or an age like 24h)")
	fl.IntVar(&minS, "min-searches", 0, "stopping rule: informative searches before any verdict (default: experiment.min_searches)")
	fl.Float64Var(&alpha, "alpha", 0, "stopping rule: p-value that declares a winner (default: experiment.alpha)")
	fl.IntVar(&maxS, "max-searches", 0, "stopping rule: stop without a winner after this many (default: experiment.max_searches)")
	fl.BoolVar(&showJSON, "json", false, "print the tally as JSON")
	return cmd
}
