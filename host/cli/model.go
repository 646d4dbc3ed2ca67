package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/plugin/checkpoint"
)

// modelKinds are the --kind values of model init.
var modelKinds = map[string]checkpoint.Kind{
	checkpoint.CrossEncoder.String(): checkpoint.CrossEncoder,
	checkpoint.BiEncoder.String():    checkpoint.BiEncoder,
}

func init() {
	model := &cobra.Command{Use: "model", Short: "Create model checkpoints (cross-encoders, and bi-encoders in the sentence-transformers layout)"}
	var (
		tiny bool
		from string
		out  string
		kind string
		seed uint64
	)
	initCmd := &cobra.Command{
		Use:   "init (--tiny | --from ENCODER_DIR) [--kind cross-encoder|bi-encoder] --out DIR",
		Short: "Write a tiny random model, or build a cross-encoder or bi-encoder from a pretrained BERT encoder",
		Long: `Write a checkpoint folder the plugin loads.

--kind cross-encoder (the default) is BertForSequenceClassification with one
label: a plain encoder gets a fresh classification head drawn from --seed
(fine-tune it before trusting its scores); a cross-encoder is copied.

--kind bi-encoder is a sentence-transformers folder (modules.json): query and
documents are embedded apart and compared, and document embeddings can be
precomputed (rerank index --model). A sentence-transformers folder keeps its
pooling, similarity and max_seq_length; a plain encoder gets mean pooling,
normalised embeddings, cosine similarity and at most 256 tokens a text. No
weights are drawn.

--tiny writes a small random model for tests (2 layers, hidden 32), of either kind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, ok := modelKinds[kind]
			switch {
			case !ok:
				return fmt.Errorf("--kind %q: want cross-encoder or bi-encoder", kind)
			case out == "":
				return fmt.Errorf("--out is required")
			case tiny == (from != ""):
				return fmt.Errorf("give exactly one of --tiny and --from")
			}
			stdout := cmd.OutOrStdout()
			if tiny {
				if err := checkpoint.WriteTiny(out, seed); err != nil {
					return err
				}
				if k == checkpoint.BiEncoder {
					if _, err := checkpoint.Init(out, out, checkpoint.BiEncoder, seed); err != nil {
						return err
					}
				}
				fmt.Fprintf(stdout, "wrote a tiny random %s (2 layers, hidden 32, seed %d) to %s\n", k, seed, out)
				return describeBiEncoder(stdout, out, k)
			}
			initialised, err := checkpoint.Init(from, out, k, seed)
			if err != nil {
				return err
			}
			if len(initialised) > 0 {
				fmt.Fprintf(stdout, "%s is a plain encoder: initialised %v as N(0, 0.02) weights and zero biases from seed %d\n", from, initialised, seed)
			}
			if k == checkpoint.CrossEncoder {
				fmt.Fprintf(stdout, "wrote cross-encoder to %s; fine-tune it before trusting its scores\n", out)
				return nil
			}
			fmt.Fprintf(stdout, "wrote bi-encoder to %s\n", out)
			return describeBiEncoder(stdout, out, k)
		},
	}
	initCmd.Flags().BoolVar(&tiny, "tiny", false, "a tiny random model for tests")
	initCmd.Flags().StringVar(&from, "from", "", "a pretrained BERT encoder folder (config.json, model.safetensors, tokenizer.json), or a sentence-transformers folder")
	initCmd.Flags().StringVar(&kind, "kind", checkpoint.CrossEncoder.String(), "cross-encoder or bi-encoder")
	initCmd.Flags().StringVar(&out, "out", "", "output folder")
	initCmd.Flags().Uint64Var(&seed, "seed", 42, "seed for the initialised tensors")
	model.AddCommand(initCmd)
	rootCmd.AddCommand(model)
}

// describeBiEncoder prints how the bi-encoder written to dir embeds and
// compares texts, as the plugin will read it back.
func describeBiEncoder(w io.Writer, dir string, k checkpoint.Kind) error {
	if k != checkpoint.BiEncoder {
		return nil
	}
	cfg, err := checkpoint.ReadConfig(dir)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", dir, err)
	}
	s := cfg.Sentence
	fmt.Fprintf(w, "kind %s: pooling %s, normalize %t, similarity %s, max_seq_length %d, dimension %d\n",
		cfg.Kind, s.Pooling, s.Normalize, s.Similarity, s.MaxSeqLength, s.Dim)
	return nil
}
