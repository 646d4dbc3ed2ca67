package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/plugin/checkpoint"
)

// Options wire a Follower.
type Options struct {
	Primary string        // the primary's base URL
	Token   string        // the primary's admin token
	Name    string        // this follower in the primary's roster
	Poll    time.Duration // how often to ask
	// Dir receives the copies of the primary's checkpoints, one folder per
	// version.
	Dir      string
	Registry *registry.Registry // this host's own
	Logger   *slog.Logger
}

// Swapper switches the live model to a version registered here
// (lifecycle.Manager.Swap).
type Swapper func(ctx context.Context, version, reason string) error

// Status is a follower's account of itself.
type Status struct {
	Primary string `json:"primary"`
	// Serving is the version the primary served at its last answer.
	Serving string `json:"primary_serving,omitempty"`
	// LastSync is the last time this host served what the primary serves.
	LastSync time.Time `json:"last_sync,omitzero"`
	// LastError is the last poll's failure; empty after a poll that worked.
	LastError string `json:"last_error,omitempty"`
	// Failures counts polls that failed in a row.
	Failures int `json:"failures"`
}

// Follower keeps this host on the primary's serving version.
type Follower struct {
	o    Options
	base *url.URL
	http *http.Client

	mu     sync.Mutex
	status Status
}

// pollTimeout bounds asking which version serves; copyTimeout bounds copying
// a checkpoint (hundreds of MB on a slow link).
const (
	pollTimeout = 10 * time.Second
	copyTimeout = 10 * time.Minute
)

// New checks the options; nothing is contacted yet.
func New(o Options) (*Follower, error) {
	u, err := url.Parse(o.Primary)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("replica: primary %q: want http://HOST:PORT", o.Primary)
	}
	if o.Registry == nil || o.Dir == "" || o.Poll <= 0 {
		return nil, errors.New("replica: registry, folder and poll interval are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Follower{o: o, base: u, http: &http.Client{}, status: Status{Primary: o.Primary}}, nil
}

// Status is where the follower stands.
func (f *Follower) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Prime copies the primary's serving version and records it as serving here
// without loading it: the host starts its plugin with it.
func (f *Follower) Prime(ctx context.Context) error { return f.Sync(ctx, nil) }

// Run polls the primary every Poll until ctx ends, swapping each new
// serving version in with swap. A failed poll leaves the serving model as it
// is and is retried at the next one.
func (f *Follower) Run(ctx context.Context, swap Swapper) {
	t := time.NewTicker(f.o.Poll)
	defer t.Stop()
	for {
		if err := f.Sync(ctx, swap); err != nil && ctx.Err() == nil {
			f.o.Logger.Warn("replica: not in step with the primary; serving what this host has", "primary", f.o.Primary, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync makes this host serve what the primary serves: one poll. With a nil
// swap the change is only recorded (Prime).
func (f *Follower) Sync(ctx context.Context, swap Swapper) error {
	err := f.sync(ctx, swap)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.status.LastError = err.Error()
		f.status.Failures++
		return err
	}
	f.status.LastSync, f.status.LastError, f.status.Failures = time.Now().UTC(), "", 0
	return nil
}

func (f *Follower) sync(ctx context.Context, swap Swapper) error {
	local, serving, err := f.o.Registry.Serving()
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	var want registry.Version
	if err := f.get(pctx, "admin/serving", local.ID, &want); err != nil {
		return err
	}
	f.mu.Lock()
	f.status.Serving = want.ID
	f.mu.Unlock()
	if serving && local.ID == want.ID {
		return sameCheckpoint(local, want)
	}
	cctx, cancel := context.WithTimeout(ctx, copyTimeout)
	defer cancel()
	if _, err := f.mirror(cctx, want); err != nil {
		return err
	}
	reason := fmt.Sprintf("replica of %s, which serves %s", f.o.Primary, want.ID)
	if swap == nil {
		_, err = f.o.Registry.SetServing(want.ID, reason, nil)
	} else {
		err = swap(cctx, want.ID, reason)
	}
	if err != nil {
		return fmt.Errorf("serve %s: %w", want.ID, err)
	}
	f.o.Logger.Info("replica: serving the primary's version", "version", want.ID, "was", local.ID, "primary", f.o.Primary)
	return nil
}

// mirror returns the version registered here under want's id, copying its
// checkpoint from the primary and registering it first if it is not.
func (f *Follower) mirror(ctx context.Context, want registry.Version) (registry.Version, error) {
	v, err := f.o.Registry.Get(want.ID)
	if err == nil {
		return v, sameCheckpoint(v, want)
	}
	if !errors.Is(err, registry.ErrNotFound) {
		return v, err
	}
	dir := filepath.Join(f.o.Dir, want.ID)
	if h, err := checkpoint.Hash(dir); err != nil || h != want.CheckpointHash {
		if err := f.copyCheckpoint(ctx, want, dir); err != nil {
			return v, fmt.Errorf("copy %s from the primary: %w", want.ID, err)
		}
	}
	mine := registry.Version{
		ID: want.ID, Checkpoint: dir, CheckpointHash: want.CheckpointHash, Data: want.Data,
		Hyperparameters: want.Hyperparameters, Metrics: want.Metrics, Fusion: want.Fusion, Created: want.Created,
		Note: strings.TrimSpace("copied from the primary " + f.o.Primary + ". " + want.Note),
	}
	if _, err := f.o.Registry.Get(want.Parent); err == nil {
		mine.Parent = want.Parent
	}
	if v, err = f.o.Registry.Register(mine); err != nil {
		return v, err
	}
	if d, err := want.GateDecision(); err == nil && d != nil && d.Accepted {
		return f.o.Registry.Judge(v.ID, nil, *d)
	}
	return v, nil
}

// sameCheckpoint refuses a local version that shares the primary's id but
// not its weights: the data folder belongs to another host's registry.
func sameCheckpoint(local, want registry.Version) error {
	if local.CheckpointHash != want.CheckpointHash {
		return fmt.Errorf("version %s here is checkpoint %.12s, on the primary %.12s: this data folder holds another host's registry; give the replica its own", want.ID, local.CheckpointHash, want.CheckpointHash)
	}
	return nil
}

// copyCheckpoint downloads want's folder into a temporary folder beside dst,
// checks every file's size and sha256 and the weights' hash against the
// registry's, and only then renames it to dst: a copy cut short is never
// taken for a checkpoint.
func (f *Follower) copyCheckpoint(ctx context.Context, want registry.Version, dst string) (err error) {
	var m struct {
		Files []File `json:"files"`
	}
	filesPath := "admin/models/" + want.ID + "/files"
	if err := f.get(ctx, filesPath, "", &m); err != nil {
		return err
	}
	if err := checkManifest(m.Files); err != nil {
		return err
	}
	weights := false
	for _, file := range m.Files {
		weights = weights || file.Path == checkpoint.WeightsFile && file.SHA256 == want.CheckpointHash
	}
	if !weights {
		return fmt.Errorf("the primary's files of %s lack %s with the registered hash %.12s", want.ID, checkpoint.WeightsFile, want.CheckpointHash)
	}
	if err := os.MkdirAll(f.o.Dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(f.o.Dir, ".copy-"+want.ID+"-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, file := range m.Files {
		if err := f.download(ctx, filesPath, file, tmp); err != nil {
			return fmt.Errorf("%s: %w", file.Path, err)
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return checkpoint.SyncDir(f.o.Dir)
}

// download writes one file of the manifest under dir and checks it.
func (f *Follower) download(ctx context.Context, filesPath string, file File, dir string) error {
	resp, err := f.do(ctx, filesPath+"/"+file.Path, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	path := filepath.Join(dir, filepath.FromSlash(file.Path))
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(resp.Body, file.Size+1))
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != file.Size || got != file.SHA256 {
		return fmt.Errorf("got %d bytes with sha256 %.12s, the manifest says %d bytes, %.12s", n, got, file.Size, file.SHA256)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// get decodes the primary's JSON answer at path into out.
func (f *Follower) get(ctx context.Context, path, serving string, out any) error {
	resp, err := f.do(ctx, path, serving)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: unreadable answer: %w", path, err)
	}
	return nil
}

// do sends an authorised GET (path unescaped: JoinPath escapes it), reporting this follower and what it serves;
// an answer other than 200 is an error carrying the primary's message.
func (f *Follower) do(ctx context.Context, path, serving string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base.JoinPath(path).String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+f.o.Token)
	req.Header.Set(HeaderName, f.o.Name)
	if serving != "" {
		req.Header.Set(HeaderServing, serving)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("primary %s: %w", f.o.Primary, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(resp.Status)
	}
	return nil, fmt.Errorf("primary %s: GET /%s answered %d: %s", f.o.Primary, path, resp.StatusCode, e.Error)
}
