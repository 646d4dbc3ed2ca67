// Package pluginclient starts bin/rerank-plugin through go-plugin and keeps
// it running: it notices a crash, restarts the process with backoff, reloads
// the models it had, and fails calls fast with contract.ErrUnavailable while
// the plugin is down so searches can fall back to first-stage order.
package pluginclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/rerankloop/rerank/plugin/contract"
)

// Options configure the plugin process.
type Options struct {
	// PluginPath is the plugin binary; default: rerank-plugin beside the running executable.
	PluginPath string
	// Checksum is the expected sha256 (hex) of the binary. Empty: read
	// PluginPath + ".sha256" (written by `make build`), else hash the binary now.
	Checksum string
	// ModelPath, if set, is loaded and served at start and after every
	// restart; ModelHash, if set, is the sha256 its weights must have.
	ModelPath, ModelVersion, ModelHash string

	Device string
	// Precision is the plugin's arithmetic (auto, fp32, bf16, fp16; empty:
	// the plugin's default, auto).
	Precision string
	Threads   int
	MaxLength int
	BatchSize int
	Window    bool
	Stride    int
	Seed      uint64
	// MaxDocuments is the most documents one request may carry; the host
	// passes its own limit so that the two never disagree (0: the plugin's
	// default, 1000).
	MaxDocuments int
	// EmbeddingCache is where bi-encoders keep document embeddings across
	// restarts (empty: a temporary folder per plugin process).
	EmbeddingCache string

	// CallTimeout is the deadline of a call whose context has none (default 30 s).
	CallTimeout time.Duration
	// LoadTimeout bounds loading a model (default 5 min).
	LoadTimeout time.Duration
	// Poll is how often the process is checked for an exit (default 100 ms).
	Poll time.Duration
	// A plugin that hangs (a deadlock, a stuck device call, SIGSTOP) does
	// not exit: every Probe (default 1 s) it must answer Health within
	// ProbeTimeout (default 1 s); after ProbeFailures (default 3) failures
	// in a row it is killed and restarted.
	Probe, ProbeTimeout time.Duration
	ProbeFailures       int
	Log                 *slog.Logger
}

// Client implements contract.Reranker over a supervised plugin process.
type Client struct {
	opts     Options
	checksum []byte

	mu     sync.RWMutex
	proc   *plugin.Client
	rpc    *plugins
	loads  []contract.LoadRequest // replayed after a restart, in order
	closed bool

	restarts atomic.Int64
	// down is when the last crash was noticed (unix nanoseconds; 0: never).
	down atomic.Int64
	stop chan struct{}
}

// Start launches the plugin, loads opts.ModelPath if set, and supervises it.
func Start(ctx context.Context, opts Options) (*Client, error) {
	if opts.PluginPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.PluginPath = filepath.Join(filepath.Dir(exe), "rerank-plugin")
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 5 * time.Minute
	}
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.Probe <= 0 {
		opts.Probe = time.Second
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = time.Second
	}
	if opts.ProbeFailures <= 0 {
		opts.ProbeFailures = 3
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	sum, err := checksum(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, checksum: sum, stop: make(chan struct{})}
	proc, rpc, err := c.launch()
	if err != nil {
		return nil, err
	}
	c.proc, c.rpc = proc, rpc
	if opts.ModelPath != "" {
		if _, err := c.Load(ctx, contract.LoadRequest{Path: opts.ModelPath, Version: opts.ModelVersion, Serve: true, CheckpointHash: opts.ModelHash}); err != nil {
			c.Close()
			return nil, err
		}
	}
	go c.supervise()
	return c, nil
}

func checksum(opts Options) ([]byte, error) {
	if _, err := os.Stat(opts.PluginPath); err != nil {
		return nil, fmt.Errorf("plugin binary: %w (build it with `make build`, or pass its path)", err)
	}
	want := opts.Checksum
	if want == "" {
		if b, err := os.ReadFile(opts.PluginPath + ".sha256"); err == nil {
			want = strings.Fields(string(b) + " ")[0]
		}
	}
	if want == "" {
		f, err := os.Open(opts.PluginPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	}
	sum, err := hex.DecodeString(want)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("plugin checksum %q is not a hex sha256", want)
	}
	return sum, nil
}

func (c *Client) args() []string {
	o := c.opts
	a := []string{}
	add := func(flag, v string) { a = append(a, "--"+flag+"="+v) }
	if o.Device != "" {
		add("device", o.Device)
	}
	if o.Precision != "" {
		add("precision", o.Precision)
	}
	if o.Threads > 0 {
		add("threads", strconv.Itoa(o.Threads))
	}
	if o.MaxLength > 0 {
		add("max-length", strconv.Itoa(o.MaxLength))
	}
	if o.BatchSize > 0 {
		add("batch-size", strconv.Itoa(o.BatchSize))
	}
	if o.Window {
		add("window", "true")
	}
	if o.Stride > 0 {
		add("stride", strconv.Itoa(o.Stride))
	}
	if o.Seed > 0 {
		add("seed", strconv.FormatUint(o.Seed, 10))
	}
	if o.EmbeddingCache != "" {
		add("embedding-cache", o.EmbeddingCache)
	}
	if o.MaxDocuments > 0 {
		add("max-documents", strconv.Itoa(o.MaxDocuments))
	}
	return a
}

// launch starts a plugin process and connects to it.
func (c *Client) launch() (*plugin.Client, *plugins, error) {
	cmd := exec.Command(c.opts.PluginPath, c.args()...)
	// Measured on 2-core machines: idle OpenMP threads must not spin, and
	// libtorch's many page faults are far cheaper with huge pages.
	cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY=PASSIVE", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
	dieWithParent(cmd)
	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  contract.Handshake,
		VersionedPlugins: contract.VersionedPlugins(nil, nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SecureConfig:     &plugin.SecureConfig{Checksum: c.checksum, Hash: sha256.New()},
		GRPCDialOptions:  contract.DialOptions(),
		// Loading libtorch's libraries can take a while on a busy machine.
		StartTimeout: 3 * time.Minute,
		// The plugin's log lines (and go-plugin's own) reach the host's
		// logger at their own level.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "rerank-plugin", Output: slogWriter{c.opts.Log}, JSONFormat: true,
			Level: hclog.Info}),
	})
	conn, err := proc.Client()
	if err != nil {
		proc.Kill()
		return nil, nil, fmt.Errorf("starting plugin %s: %w", c.opts.PluginPath, err)
	}
	rr, err := conn.Dispense(contract.PluginName)
	var tr any
	if err == nil {
		tr, err = conn.Dispense(contract.TrainerPluginName)
	}
	if err != nil {
		proc.Kill()
		return nil, nil, fmt.Errorf("plugin %s: %w", c.opts.PluginPath, err)
	}
	return proc, &plugins{Reranker: rr.(contract.Reranker), trainer: tr.(contract.Trainer)}, nil
}

// plugins are the entries a plugin process serves.
type plugins struct {
	contract.Reranker
	trainer contract.Trainer
}

// supervise polls for the process's exit, probes its liveness, kills it
// when it hangs, and restarts it with backoff.
func (c *Client) supervise() {
	tick := time.NewTicker(c.opts.Poll)
	defer tick.Stop()
	failures, lastProbe := 0, time.Now()
	var cpu busyMeter
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		c.mu.RLock()
		proc, rpc := c.proc, c.rpc
		exited := proc == nil || proc.Exited()
		c.mu.RUnlock()
		if !exited && rpc != nil && time.Since(lastProbe) >= c.opts.Probe {
			lastProbe = time.Now()
			if rc := proc.ReattachConfig(); rc != nil {
				cpu.watch(rc.Pid)
			}
			if failures = c.probe(rpc, failures, &cpu); failures >= c.opts.ProbeFailures {
				c.opts.Log.Error("reranker plugin does not answer its health probe; killing it", "failures", failures, "timeout", c.opts.ProbeTimeout)
				// go-plugin's Kill first asks the plugin to shut down, an RPC
				// that a hung process never answers: kill the process itself.
				if rc := proc.ReattachConfig(); rc != nil && rc.Pid > 0 {
					if p, err := os.FindProcess(rc.Pid); err == nil {
						p.Kill()
					}
				}
				proc.Kill()
				exited = true
			}
		}
		if !exited {
			continue
		}
		failures = 0
		c.mu.Lock()
		c.rpc = nil // calls fail fast from here on
		c.mu.Unlock()
		c.down.Store(time.Now().UnixNano())
		c.opts.Log.Error("reranker plugin exited; restarting")
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
			if err := c.restart(); err == nil {
				break
			} else {
				c.opts.Log.Error("reranker plugin restart failed", "err", err, "retry_in", backoff)
			}
			select {
			case <-c.stop:
				return
			case <-time.After(backoff):
			}
		}
	}
}

// probe asks the plugin for its health and returns the failures in a row.
// A probe that times out while the process keeps using CPU does not count:
// on an overloaded machine a busy plugin answers late, and killing it would
// lose its work (a fine-tune, say) for nothing. A hung process (stopped, or
// deadlocked) uses none.
func (c *Client) probe(rpc contract.Reranker, failures int, cpu *busyMeter) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ProbeTimeout)
	defer cancel()
	err := rpc.Health(ctx)
	busy := cpu.busy()
	switch {
	case err == nil:
		return 0
	case busy:
		c.opts.Log.Warn("reranker plugin health probe failed while the plugin is using CPU: busy, not hung", "err", err)
		return failures
	}
	c.opts.Log.Warn("reranker plugin health probe failed", "err", err)
	return failures + 1
}

// minBusyTicks is the CPU time (clock ticks, 10 ms on Linux) a process must
// use between two probes to count as working; an idle or stopped Go process
// uses less.
const minBusyTicks = 5

// busyMeter says whether a process used CPU since the last look.
type busyMeter struct {
	pid  int
	last uint64
	seen bool
}

// watch points the meter at pid, forgetting another process's count.
func (m *busyMeter) watch(pid int) {
	if m.pid != pid {
		*m = busyMeter{pid: pid}
	}
}

// busy reports whether the process used at least minBusyTicks of CPU since
// the previous call; false on the first call and where /proc is not read.
func (m *busyMeter) busy() bool {
	now, ok := cpuTicks(m.pid)
	if !ok {
		m.seen = false
		return false
	}
	busy := m.seen && now >= m.last+minBusyTicks
	m.last, m.seen = now, true
	return busy
}

// restart launches a new process, replays the model loads, and only then
// lets calls through, so no call sees a plugin without its models.
func (c *Client) restart() error {
	c.mu.Lock()
	if c.proc != nil {
		c.proc.Kill()
		c.proc = nil
	}
	loads := append([]contract.LoadRequest(nil), c.loads...)
	c.mu.Unlock()
	proc, rpc, err := c.launch()
	if err != nil {
		return err
	}
	for _, l := range loads {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.LoadTimeout)
		_, err := rpc.Load(ctx, l)
		cancel()
		if err != nil {
			proc.Kill()
			return fmt.Errorf("reloading %s: %w", l.Path, err)
		}
	}
	c.mu.Lock()
	if c.closed { // Close ran during the restart and could not see this process
		c.mu.Unlock()
		proc.Kill()
		return nil
	}
	c.proc, c.rpc = proc, rpc
	c.mu.Unlock()
	c.restarts.Add(1)
	c.opts.Log.Info("reranker plugin restarted", "models", len(loads))
	return nil
}

// PID is the plugin process's id (0 while there is none, e.g. restarting).
func (c *Client) PID() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.proc == nil || c.rpc == nil {
		return 0
	}
	if rc := c.proc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// downSince is when the last crash was noticed.
func (c *Client) downSince() time.Time {
	if n := c.down.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Restarts counts restarts since Start.
func (c *Client) Restarts() int64 { return c.restarts.Load() }

func (c *Client) conn() (*plugins, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, fmt.Errorf("%w: client closed", contract.ErrUnavailable)
	}
	if c.rpc == nil {
		return nil, fmt.Errorf("%w: plugin process is restarting", contract.ErrUnavailable)
	}
	return c.rpc, nil
}

func (c *Client) deadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// unavailable marks errors from a dying connection as ErrUnavailable.
func unavailable(err error) error {
	if err == nil || errors.Is(err, contract.ErrUnavailable) {
		return err
	}
	if s := err.Error(); strings.Contains(s, "connection refused") || strings.Contains(s, "EOF") ||
		strings.Contains(s, "transport is closing") {
		return fmt.Errorf("%w: %v", contract.ErrUnavailable, err)
	}
	return err
}

func (c *Client) Rerank(ctx context.Context, req contract.RerankRequest) (contract.RerankResponse, error) {
	rpc, err := c.conn()
	if err != nil {
		return contract.RerankResponse{}, err
	}
	ctx, cancel := c.deadline(ctx, c.opts.CallTimeout)
	defer cancel()
	resp, err := rpc.Rerank(ctx, req)
	return resp, unavailable(err)
}

// Load loads a checkpoint and remembers it, so a restarted plugin gets it back.
func (c *Client) Load(ctx context.Context, req contract.LoadRequest) (contract.ModelInfo, error) {
	rpc, err := c.conn()
	if err != nil {
		return contract.ModelInfo{}, err
	}
	abs, err := filepath.Abs(req.Path)
	if err != nil {
		return contract.ModelInfo{}, err
	}
	req.Path = abs
	ctx, cancel := c.deadline(ctx, c.opts.LoadTimeout)
	defer cancel()
	info, err := rpc.Load(ctx, req)
	if err != nil {
		return info, unavailable(err)
	}
	req.Version = info.Version // replay under the same name
	c.mu.Lock()
	// Keep the replay list equal to what the plugin holds: a load replaces
	// its own version, and a serving load replaces the previous serving one.
	kept := c.loads[:0]
	for _, l := range c.loads {
		if l.Version != req.Version && !(req.Serve && l.Serve) {
			kept = append(kept, l)
		}
	}
	c.loads = append(kept, req)
	c.mu.Unlock()
	return info, nil
}

// Unload frees a non-serving model and forgets it, so a restart does not bring it back.
func (c *Client) Unload(ctx context.Context, version string) error {
	rpc, err := c.conn()
	if err != nil {
		return err
	}
	ctx, cancel := c.deadline(ctx, c.opts.CallTimeout)
	defer cancel()
	if err := rpc.Unload(ctx, version); err != nil {
		return unavailable(err)
	}
	c.mu.Lock()
	c.loads = slices.DeleteFunc(c.loads, func(l contract.LoadRequest) bool { return l.Version == version })
	c.mu.Unlock()
	return nil
}

func (c *Client) Info(ctx context.Context) ([]contract.ModelInfo, error) {
	rpc, err := c.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.deadline(ctx, c.opts.CallTimeout)
	defer cancel()
	infos, err := rpc.Info(ctx)
	return infos, unavailable(err)
}

func (c *Client) Health(ctx context.Context) error {
	rpc, err := c.conn()
	if err != nil {
		return err
	}
	ctx, cancel := c.deadline(ctx, c.opts.CallTimeout)
	defer cancel()
	return unavailable(rpc.Health(ctx))
}

// Close stops supervision and the plugin process.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	proc := c.proc
	c.mu.Unlock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if proc != nil {
		proc.Kill()
	}
	return nil
}
