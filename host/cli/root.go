// Package cli holds bin/rerank's subcommands, one file each, in pipeline order:
// index, serve, predict, eval, finetune, retrain, experiment.
package cli

import (
	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "rerank",
	Short:         "BM25 search with a cross-encoder reranker that learns from its own clicks",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// Execute runs the command line.
func Execute() error { return rootCmd.Execute() }
