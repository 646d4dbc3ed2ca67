package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/app"
	"github.com/rerankloop/rerank/host/retrain"
)

func init() {
	var (
		hf           hostFlags
		noWait, stop bool
	)
	cmd := &cobra.Command{
		Use:   "retrain [--host URL [--token T] [--no-wait | --cancel]] [--config FILE] [--data-dir DIR]",
		Short: "Retrain the reranker from the click log: labels, fine-tune, gate, swap or keep",
		Long: `Run the closed loop once: export the searches logged since the serving
version's data window, derive labels with the position-bias click model, add
hard negatives from BM25, fine-tune the serving checkpoint in the plugin,
register the candidate (parent, data window, hyperparameters), evaluate it
against the serving version on held-out queries (retrain.judgments, else
click-derived labels of held-out queries), apply the gate and swap it in only
if the gate accepts. Every retrain.* setting of the configuration applies.

With --host, the running host does it (POST /admin/retrain) and this command
follows its progress (GET /admin/retrain); --no-wait returns at once, --cancel
stops a running retrain. Without --host, the data folder is opened directly
(stop "rerank serve" first): the plugin is started, the run happens here, and
the registry records the outcome for the host's next start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if hf.url != "" {
				return remoteRetrain(ctx, hf, noWait, stop, out, errw)
			}
			if noWait || stop {
				return errors.New("--no-wait and --cancel act on a running host: give --host")
			}
			cfg, err := configs.Load(cmd.Flags())
			if err != nil {
				return err
			}
			return localRetrain(ctx, cfg, out, errw)
		},
	}
	configs.AddFlags(cmd.Flags())
	hf.add(cmd.Flags(), false)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "with --host: start the run and return")
	cmd.Flags().BoolVar(&stop, "cancel", false, "with --host: cancel the running retrain")
	rootCmd.AddCommand(cmd)
}

func remoteRetrain(ctx context.Context, hf hostFlags, noWait, cancel bool, out, errw io.Writer) error {
	c, err := hf.client()
	if err != nil {
		return err
	}
	var st retrain.Status
	if cancel {
		if err := c.call(ctx, http.MethodDelete, "/admin/retrain", nil, &st); err != nil {
			return err
		}
		fmt.Fprintf(out, "cancelling %s; the trainer stops after its current step\n", st.ID)
		return nil
	}
	if err := c.call(ctx, http.MethodPost, "/admin/retrain", map[string]string{"trigger": "rerank retrain"}, &st); err != nil {
		return err
	}
	fmt.Fprintf(out, "retrain %s started on %s\n", st.ID, hf.url)
	if noWait {
		return nil
	}
	st, err = followRetrain(ctx, func() (retrain.Status, error) {
		var s retrain.Status
		return s, c.call(ctx, http.MethodGet, "/admin/retrain", nil, &s)
	}, out, errw)
	if err != nil {
		return err
	}
	return retrainResult(out, st)
}

// localRetrain opens the data folder, starts the plugin with the serving
// version and runs the loop once here.
func localRetrain(ctx context.Context, cfg configs.Config, out, errw io.Writer) error {
	if cfg.Rerank.ModelPath == "" {
		return errors.New("retraining needs a reranker: set rerank.model_path (the base checkpoint) as for rerank serve")
	}
	logger := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := app.Open(ctx, app.Options{Config: cfg, Logger: logger, Reranker: true})
	if err != nil {
		return err
	}
	defer h.Close()
	loop := h.Loop
	st, err := loop.StartRetrain("rerank retrain (local)")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "retrain %s started on %s\n", st.ID, cfg.DataDir)
	st, err = followRetrain(ctx, func() (retrain.Status, error) {
		s, _ := loop.RetrainStatus()
		return s, nil
	}, out, errw)
	if errors.Is(err, context.Canceled) {
		loop.CancelRetrain()
		st, _ = loop.WaitRetrain(context.Background())
	} else if err != nil {
		return err
	}
	return retrainResult(out, st)
}

// followRetrain prints a run's log as it grows and its training progress (a
// bar on a terminal, a line every 20 s otherwise) until it ends. A cancelled
// ctx returns the status so far with ctx's error.
func followRetrain(ctx context.Context, get func() (retrain.Status, error), out, errw io.Writer) (retrain.Status, error) {
	var (
		printed  int
		bar      *progressbar.ProgressBar
		lastLine time.Time
		st       retrain.Status
		err      error
	)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	tty := isTerminal(errw)
	for {
		if st, err = get(); err != nil {
			return st, err
		}
		if fresh := st.Logged - printed; fresh > 0 {
			if bar != nil {
				bar.Clear()
			}
			for _, l := range st.Log[max(0, len(st.Log)-fresh):] {
				fmt.Fprintf(out, "  %s\n", l)
			}
			printed = st.Logged
		}
		if t := st.Training; t != nil && st.Phase == "train" && t.TotalSteps > 0 {
			desc := fmt.Sprintf("epoch %d, loss %.4f, %.1f pairs/s, eta %s", t.Epoch, t.Loss, t.PairsPerSecond, (time.Duration(t.ETASeconds) * time.Second).String())
			switch {
			case tty:
				if bar == nil {
					bar = progressbar.NewOptions(t.TotalSteps, progressbar.OptionSetWriter(errw), progressbar.OptionShowCount(),
						progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(errw) }))
				}
				bar.Describe(desc)
				bar.Set(t.Step)
			case time.Since(lastLine) >= 20*time.Second && t.Step > 0:
				fmt.Fprintf(out, "  training step %d/%d: %s\n", t.Step, t.TotalSteps, desc)
				lastLine = time.Now()
			}
		}
		if st.State != retrain.StateRunning {
			if bar != nil {
				bar.Exit()
			}
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
	}
}

// retrainResult prints how a run ended; a failed or cancelled run is an error.
func retrainResult(out io.Writer, st retrain.Status) error {
	took := st.Finished.Sub(st.Started).Round(time.Second)
	switch st.State {
	case retrain.StateFailed:
		return fmt.Errorf("retrain %s failed after %s: %s", st.ID, took, st.Error)
	case retrain.StateCancelled:
		return fmt.Errorf("retrain %s cancelled after %s: %s", st.ID, took, st.Error)
	}
	o := st.Outcome
	if o == nil {
		return fmt.Errorf("retrain %s ended (%s) without an outcome", st.ID, st.State)
	}
	d := o.Decision
	fmt.Fprintf(out, "retrain %s finished in %s: candidate %s (parent %s, %d searches, %d clicks, %d training pairs)\n",
		st.ID, took, o.Candidate, o.Parent, o.Data.Searches, o.Data.Clicks, o.Data.Examples)
	fmt.Fprintf(out, "held out: %s (%d queries)\n", o.HeldOut, d.Queries)
	printDecision(out, d)
	if o.Swapped {
		fmt.Fprintf(out, "swapped: %s now serves\n", o.Candidate)
	} else {
		fmt.Fprintf(out, "kept: %s still serves%s\n", o.Serving, suffix(o.Note))
	}
	return nil
}

func suffix(note string) string {
	if note == "" {
		return ""
	}
	return " (" + note + ")"
}
