package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rerankloop/rerank/host/search"
)

// ensureIndex builds an empty index at dir when there is none: a rerank-only
// host serves no searches, and its retrain loop reads documents from this
// index once `rerank index` or `rerank logs import-ubi --copy-docs` fills it.
func ensureIndex(ctx context.Context, dir string) error {
	_, err := os.Stat(filepath.Join(dir, "index_meta.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return search.Build(ctx, dir, func(func(search.Doc) error) error { return nil }, search.Options{}, nil)
}
