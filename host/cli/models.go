package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/app"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/registry"
)

func init() {
	models := &cobra.Command{
		Use:   "models",
		Short: "List and inspect the model registry",
		Long: `Every checkpoint the host trained or served is registered in
<data-dir>/events.db, beside the clicks it learned from: its parent, the log
window, hyperparameters, metrics, the gate's decision and when it served.
Only one process can open the database: while "rerank serve" runs on the data
folder, ask it instead with --host URL (its admin API, GET /admin/models).`,
	}
	configs.AddFlags(models.PersistentFlags())
	var hf hostFlags
	hf.add(models.PersistentFlags(), false)
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--data-dir DIR] [--json]",
		Short: "One line per version, oldest first; * marks the serving one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withModels(cmd, hf, func(vs []registry.Version, _ []registry.Swap) error {
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), vs)
				}
				printVersions(cmd.OutOrStdout(), vs)
				return nil
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the versions as JSON")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show VERSION [--data-dir DIR] [--json]",
		Short: "Everything recorded about one version, with its swaps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withModels(cmd, hf, func(vs []registry.Version, hist []registry.Swap) error {
				i := slices.IndexFunc(vs, func(v registry.Version) bool { return v.ID == args[0] })
				if i < 0 {
					return fmt.Errorf("registry: version %q: %w", args[0], registry.ErrNotFound)
				}
				v := vs[i]
				var swaps []registry.Swap
				for _, s := range hist {
					if s.From == v.ID || s.To == v.ID {
						swaps = append(swaps, s)
					}
				}
				if showJSON {
					return writeJSONOut(cmd.OutOrStdout(), struct {
						registry.Version
						Swaps []registry.Swap `json:"swaps"`
					}{v, swaps})
				}
				return printVersion(cmd.OutOrStdout(), v, swaps)
			})
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print the version as JSON")
	models.AddCommand(list, show)
	rootCmd.AddCommand(models)
}

// withModels hands fn the versions and swaps: from the running host's admin
// API with --host, else from the data folder's registry.
func withModels(cmd *cobra.Command, hf hostFlags, fn func([]registry.Version, []registry.Swap) error) error {
	if hf.url != "" {
		c, err := hf.client()
		if err != nil {
			return err
		}
		var m lifecycle.Models
		if err := c.call(cmd.Context(), http.MethodGet, "/admin/models", nil, &m); err != nil {
			return err
		}
		return fn(m.Versions, m.Swaps)
	}
	return withRegistry(cmd.Flags(), func(reg *registry.Registry) error {
		vs, err := reg.List()
		if err != nil {
			return err
		}
		hist, err := reg.History()
		if err != nil {
			return err
		}
		return fn(vs, hist)
	})
}

// withRegistry opens the click log of the data folder the flags name and runs
// fn on its registry.
func withRegistry(fs *pflag.FlagSet, fn func(*registry.Registry) error) error {
	cfg, err := configs.Load(fs)
	if err != nil {
		return err
	}
	h, err := app.Open(context.Background(), app.Options{Config: cfg, NoIndex: true})
	if err != nil {
		return err
	}
	defer h.Close()
	if err := fn(h.Registry); err != nil {
		return err
	}
	return h.Close()
}

func printVersions(w io.Writer, vs []registry.Version) {
	if len(vs) == 0 {
		fmt.Fprintln(w, "no model versions registered")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVERSION\tSTATUS\tCREATED\tPARENT\tCLICKS\tNDCG@10\tGATE\tCHECKPOINT")
	for _, v := range vs {
		mark := ""
		if v.Status == registry.Serving {
			mark = "*"
		}
		ndcg := "-"
		if m, ok := v.Metrics["ndcg@10"]; ok {
			ndcg = fmt.Sprintf("%.4f", m)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", mark, v.ID, v.Status, v.Created.Local().Format("2006-01-02 15:04"),
			orDash(v.Parent), v.Data.Clicks, ndcg, gateWord(v), v.Checkpoint)
	}
	tw.Flush()
}

func gateWord(v registry.Version) string {
	d, err := v.GateDecision()
	switch {
	case err != nil:
		return "unreadable"
	case d == nil:
		return "-"
	case d.Accepted:
		return "accepted"
	}
	return "rejected"
}

func printVersion(w io.Writer, v registry.Version, swaps []registry.Swap) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("version", "%s", v.ID)
	row("status", "%s", v.Status)
	row("created", "%s", v.Created.Format(time.RFC3339))
	row("parent", "%s", orDash(v.Parent))
	row("checkpoint", "%s", v.Checkpoint)
	row("checkpoint sha256", "%s", v.CheckpointHash)
	d := v.Data
	window := "-"
	if !d.Since.IsZero() || !d.Until.IsZero() {
		window = fmt.Sprintf("%s .. %s", timeOrDash(d.Since), timeOrDash(d.Until))
	}
	row("data window", "%s", window)
	row("data", "%d searches, %d clicks, %d training examples", d.Searches, d.Clicks, d.Examples)
	for _, k := range sortedKeys(v.Hyperparameters) {
		row("hyperparameter "+k, "%v", v.Hyperparameters[k])
	}
	for _, k := range sortedKeys(v.Metrics) {
		row("metric "+k, "%.4f", v.Metrics[k])
	}
	if v.Note != "" {
		row("note", "%s", v.Note)
	}
	gd, err := v.GateDecision()
	if err != nil {
		return err
	}
	if gd == nil {
		row("gate", "not judged")
	} else {
		row("gate", "%s", gd.Reason)
		for _, c := range gd.Checks {
			row("  "+c.Name, "%s: %s", passWord(c.Passed), c.Detail)
		}
	}
	for _, s := range swaps {
		row("swap", "%s %s: %s -> %s%s", s.Time.Format(time.RFC3339), s.Kind, orDash(s.From), s.To, reasonSuffix(s.Reason))
	}
	return tw.Flush()
}

func passWord(ok bool) string {
	if ok {
		return "passed"
	}
	return "failed"
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
