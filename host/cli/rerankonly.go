package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rerankloop/rerank/host/search"
)

// openIndex opens the index at dir; with create, an empty one is built there
// first when there is none: a rerank-only host serves no searches, and its
// retrain loop reads documents from this index once `rerank index` or
// `rerank logs import-ubi --copy-docs-from` fills it.
func openIndex(ctx context.Context, dir string, create bool) (*search.Index, error) {
	if create {
		_, err := os.Stat(filepath.Join(dir, "index_meta.json"))
		if errors.Is(err, fs.ErrNotExist) {
			err = search.Build(ctx, dir, func(func(search.Doc) error) error { return nil }, search.Options{}, nil)
		}
		if err != nil {
			return nil, err
		}
	}
	return search.Open(dir)
}
