package cli

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/registry"
)

func init() {
	var (
		reason string
		hf     hostFlags
	)
	cmd := &cobra.Command{
		Use:   "rollback [VERSION] [--host URL | --data-dir DIR] [--reason TEXT]",
		Short: "Make an earlier model version the serving one again",
		Long: `Return service to VERSION, or without one to the version that served before
the current one (skipping versions that were themselves rolled back from).
The target must have served before; a version the gate rejected never can.

With --host, the running host does it through its admin API (POST
/admin/rollback): its plugin loads the target beside the serving model, warms
it and switches atomically, then the registry records the swap.

Without --host, the change is recorded in the registry of
<data-dir>/events.db, which only one process can open: stop "rerank serve" on
the data folder first. The host serves the registry's serving version when it
starts.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			if hf.url != "" {
				c, err := hf.client()
				if err != nil {
					return err
				}
				var s registry.Swap
				if err := c.call(cmd.Context(), http.MethodPost, "/admin/rollback", map[string]string{"version": target, "reason": reason}, &s); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rolled back from %s to %s; the host serves %s\n", orDash(s.From), s.To, s.To)
				return nil
			}
			return withRegistry(cmd.Flags(), func(reg *registry.Registry) error {
				s, err := reg.Rollback(target, reason, nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rolled back from %s to %s\n", orDash(s.From), s.To)
				return nil
			})
		},
	}
	configs.AddFlags(cmd.Flags())
	hf.add(cmd.Flags(), false)
	cmd.Flags().StringVar(&reason, "reason", "rollback from the command line", "why, kept in the swap history")
	rootCmd.AddCommand(cmd)
}
