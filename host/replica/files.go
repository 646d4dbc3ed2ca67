// Package replica keeps several hosts on one model registry. The primary (a
// host without replica.primary) owns the registry: it retrains, swaps, rolls
// back and runs experiments. A follower asks the primary at every poll which
// version serves; when that changes it copies the version's checkpoint over
// the primary's admin API, checked file by file against sha256 sums, into its
// own data folder, registers it under the primary's id and swaps it in live.
// The primary lists who follows it and what each serves (Roster).
package replica

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// File is one file of a checkpoint folder as the primary lists it.
type File struct {
	Path   string `json:"path"` // slash-separated, inside the folder
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// maxFiles bounds a manifest: a checkpoint folder holds about a dozen files.
const maxFiles = 256

// Manifest lists the regular files under dir, with sizes and sha256 sums.
// Links and other special files are left out: a follower copies the files
// of the folder, never what a link in it points at.
func Manifest(dir string) ([]File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var files []File
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if len(files) == maxFiles {
			return fmt.Errorf("%s holds more than %d files: not a checkpoint folder", dir, maxFiles)
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		files = append(files, File{Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	return files, err
}

// Open opens the regular file name inside dir; a name that leads out of dir
// (.., an absolute path, a link out) is refused.
func Open(dir, name string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file: %w", name, fs.ErrNotExist)
	}
	return f, nil
}

// checkManifest refuses a manifest a follower must not write: paths that
// leave the folder, repeated paths, too many files.
func checkManifest(files []File) error {
	if len(files) == 0 || len(files) > maxFiles {
		return fmt.Errorf("manifest lists %d files: want 1 to %d", len(files), maxFiles)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if !fs.ValidPath(f.Path) || f.Path == "." || !filepath.IsLocal(filepath.FromSlash(f.Path)) || strings.HasPrefix(f.Path, ".") {
			return fmt.Errorf("manifest path %q leaves the folder or is hidden", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("manifest lists %q twice", f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 || len(f.SHA256) != 64 {
			return fmt.Errorf("manifest entry %q: size %d, sha256 %q", f.Path, f.Size, f.SHA256)
		}
	}
	return nil
}

// Report is one follower as the primary last heard from it.
type Report struct {
	Name    string    `json:"name"`
	Addr    string    `json:"addr"`    // the address it polled from
	Serving string    `json:"serving"` // the version it served when it asked
	Seen    time.Time `json:"seen"`
}

// Roster is the primary's list of its followers, from their polls. It is
// kept in memory: a follower reports again at its next poll.
type Roster struct {
	mu sync.Mutex
	m  map[string]Report
}

// Saw records a poll.
func (r *Roster) Saw(rep Report) {
	if rep.Name == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]Report{}
	}
	r.m[rep.Name] = rep
}

// List is every follower heard from, by name.
func (r *Roster) List() []Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Report, 0, len(r.m))
	for _, rep := range r.m {
		out = append(out, rep)
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Headers a follower's poll carries, for the primary's roster.
const (
	HeaderName    = "X-Rerank-Replica"
	HeaderServing = "X-Rerank-Replica-Serving"
)
