package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/plugin/contract"
)

func init() {
	var (
		opts    pluginclient.Options
		sigmoid bool
	)
	cmd := &cobra.Command{
		Use:   "predict --model DIR QUERY DOC [DOC...]",
		Short: "Score documents against a query with a cross-encoder (one score per document, input order)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.ModelPath == "" {
				return fmt.Errorf("--model is required")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			client, err := pluginclient.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer client.Close()
			req := contract.RerankRequest{Query: args[0], Sigmoid: sigmoid}
			for i, d := range args[1:] {
				req.Documents = append(req.Documents, contract.Document{ID: fmt.Sprint(i), Text: d})
			}
			resp, err := client.Rerank(ctx, req)
			if err != nil {
				return err
			}
			for i, s := range resp.Scores {
				fmt.Fprintf(cmd.OutOrStdout(), "%.6f\t%s\n", s, args[i+1])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ModelPath, "model", "", "checkpoint folder (config.json, model.safetensors, tokenizer.json)")
	f.BoolVar(&sigmoid, "sigmoid", false, "print sigmoid(logit) instead of the raw logit")
	pluginFlags(f, &opts)
	rootCmd.AddCommand(cmd)
}
