// Command rerank is the pure-Go CLI and search host; the model runs in bin/rerank-plugin.
package main

import (
	"fmt"
	"os"

	"github.com/rerankloop/rerank/host/cli"
)

func main() {
	if err := cli.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "rerank:", err)
		os.Exit(1)
	}
}
