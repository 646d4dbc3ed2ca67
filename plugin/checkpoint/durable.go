package checkpoint

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// WriteFileDurable replaces path with data so that a crash leaves either the
// old file or the new one, never a torn one.
func WriteFileDurable(path string, data []byte) error {
	return writeDurable(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeDurable writes path through write: a temporary file in the same
// folder, fsync, rename, then fsync of the folder so the rename itself lasts.
func writeDurable(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	w := bufio.NewWriterSize(f, 1<<20)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of dir (new, renamed or removed files) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
