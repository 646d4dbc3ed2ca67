package ubi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rerankloop/rerank/plugin/checkpoint"
)

// Cursors are where the last import stopped in each UBI index of one
// cluster: the sort values (timestamp, _id) of the last document stored.
// They live in a JSON file replaced atomically (write, fsync, rename, fsync
// the folder), so a crash leaves the old position or the new one.
type Cursors struct {
	path    string
	cluster string
	state   map[string]map[string][]any // cluster URL -> index -> search_after
}

// OpenCursors reads the cursors of cluster from path (none yet: start from
// the beginning).
func OpenCursors(path, cluster string) (*Cursors, error) {
	c := &Cursors{path: path, cluster: cluster, state: map[string]map[string][]any{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &c.state); err != nil {
		return nil, fmt.Errorf("ubi cursors %s: unreadable (%v): move it aside to import from the start; the click log drops what it already has", path, err)
	}
	return c, nil
}

// After is the position after which index is read next; nil: its start.
func (c *Cursors) After(index string) []any { return c.state[c.cluster][index] }

// Save records that index is stored up to after.
func (c *Cursors) Save(index string, after []any) error {
	if c.state[c.cluster] == nil {
		c.state[c.cluster] = map[string][]any{}
	}
	c.state[c.cluster][index] = after
	raw, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(c.path, raw)
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("ubi cursors %s: %w", path, err)
	}
	return checkpoint.SyncDir(dir)
}
