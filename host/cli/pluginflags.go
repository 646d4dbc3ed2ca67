package cli

import (
	"github.com/spf13/pflag"

	"github.com/rerankloop/rerank/host/pluginclient"
)

// pluginFlags adds the flags of every command that starts the model plugin.
func pluginFlags(f *pflag.FlagSet, o *pluginclient.Options) {
	f.StringVar(&o.PluginPath, "plugin", "", "plugin binary (default: rerank-plugin beside rerank)")
	f.StringVar(&o.Device, "device", "auto", "auto, cpu or cuda")
	f.StringVar(&o.Precision, "precision", "auto", "auto (bf16 autocast and TF32 on CUDA, fp32 on CPU), fp32, bf16 or fp16")
	f.IntVar(&o.Threads, "threads", 0, "CPU threads for the model (0: libtorch default)")
	f.IntVar(&o.MaxLength, "max-length", 512, "tokens per (query, document) pair")
	f.IntVar(&o.BatchSize, "batch-size", 32, "pairs per forward pass")
	f.BoolVar(&o.Window, "window", false, "score long documents by sliding windows (best window wins)")
}
