package fusion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is the name of the parameters' file beside a checkpoint.
const File = "fusion.json"

// fileParams is Params as read: bm25_weight must be present, since a file
// without it would otherwise silently mean "model alone".
type fileParams struct {
	Method     string   `json:"method"`
	BM25Weight *float64 `json:"bm25_weight"`
	RRFK       float64  `json:"rrf_k"`
	FittedOn   string   `json:"fitted_on"`
	NDCG10     float64  `json:"ndcg10"`
}

// Read reads dir/fusion.json. found is false, without error, when the file
// does not exist (nor dir). A file that is not one JSON object of Params'
// fields (unknown fields refused, so a misspelt one is not silently ignored),
// lacks bm25_weight, or fails Validate is an error naming its path.
func Read(dir string) (p Params, found bool, err error) {
	path := filepath.Join(dir, File)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Params{}, false, nil
	}
	if err != nil {
		return Params{}, false, err // names the path
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var fp fileParams
	if err := dec.Decode(&fp); err != nil {
		return Params{}, false, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Params{}, false, fmt.Errorf("%s: data after the JSON object", path)
	}
	if fp.BM25Weight == nil {
		return Params{}, false, fmt.Errorf("%s: bm25_weight is missing", path)
	}
	p = Params{Method: fp.Method, BM25Weight: *fp.BM25Weight, RRFK: fp.RRFK, FittedOn: fp.FittedOn, NDCG10: fp.NDCG10}
	if err := p.Validate(); err != nil {
		return Params{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return p, true, nil
}

// Write writes p to dir/fusion.json (dir must exist) durably: to a temporary
// file in dir, synced, renamed over fusion.json, and dir synced, so a reader
// sees the old file or the new one, whole, even across a crash. Invalid p is
// refused before anything is written.
func Write(dir string, p Params) error {
	path := filepath.Join(dir, File)
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(dir, "."+File+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
