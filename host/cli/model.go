package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/plugin/checkpoint"
)

func init() {
	model := &cobra.Command{Use: "model", Short: "Create cross-encoder checkpoints (Hugging Face layout)"}
	var (
		tiny bool
		from string
		out  string
		seed uint64
	)
	initCmd := &cobra.Command{
		Use:   "init (--tiny | --from ENCODER_DIR) --out DIR",
		Short: "Write a tiny random cross-encoder, or build one from a pretrained BERT encoder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case out == "":
				return fmt.Errorf("--out is required")
			case tiny == (from != ""):
				return fmt.Errorf("give exactly one of --tiny and --from")
			case tiny:
				if err := checkpoint.WriteTiny(out, seed); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote a tiny random cross-encoder (2 layers, hidden 32, seed %d) to %s\n", seed, out)
				return nil
			}
			initialised, err := checkpoint.FromEncoder(from, out, seed)
			if err != nil {
				return err
			}
			if len(initialised) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is a plain encoder: initialised %v as N(0, 0.02) weights and zero biases from seed %d\n", from, initialised, seed)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote cross-encoder to %s; fine-tune it before trusting its scores\n", out)
			return nil
		},
	}
	initCmd.Flags().BoolVar(&tiny, "tiny", false, "a tiny random model for tests")
	initCmd.Flags().StringVar(&from, "from", "", "a pretrained BERT encoder folder (config.json, model.safetensors, tokenizer.json)")
	initCmd.Flags().StringVar(&out, "out", "", "output folder")
	initCmd.Flags().Uint64Var(&seed, "seed", 42, "seed for the initialised tensors")
	model.AddCommand(initCmd)
	rootCmd.AddCommand(model)
}
