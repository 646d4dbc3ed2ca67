// Package configs loads the host's configuration (flags, RERANK_ environment
// variables, a YAML file, built-in defaults) into an immutable Config. The
// defaults are rerank.yaml itself, embedded, so the documented file and the
// behaviour without a file cannot drift apart.
package configs

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

//go:embed rerank.yaml
var defaultYAML []byte

// EnvPrefix starts every environment override: RERANK_LISTEN, RERANK_BM25_K1, ...
const EnvPrefix = "RERANK"

// Config is the whole configuration. Load returns it by value; nothing reads
// viper after that.
type Config struct {
	Listen     string     `mapstructure:"listen"`
	DataDir    string     `mapstructure:"data_dir"`
	IndexDir   string     `mapstructure:"index_dir"`
	RerankOnly bool       `mapstructure:"rerank_only"`
	AdminToken string     `mapstructure:"admin_token"`
	Log        Log        `mapstructure:"log"`
	HTTP       HTTP       `mapstructure:"http"`
	Search     Search     `mapstructure:"search"`
	BM25       BM25       `mapstructure:"bm25"`
	Rerank     Rerank     `mapstructure:"rerank"`
	ClickLog   ClickLog   `mapstructure:"clicklog"`
	Retrain    Retrain    `mapstructure:"retrain"`
	Experiment Experiment `mapstructure:"experiment"`
	Replica    Replica    `mapstructure:"replica"`
	UBI        UBI        `mapstructure:"ubi"`

	file string // the file read, empty for none
}

// File is the configuration file that was read; empty when none was.
func (c Config) File() string { return c.file }

// Log configures the structured log.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// HTTP bounds requests.
type HTTP struct {
	MaxBodyBytes    int64         `mapstructure:"max_body_bytes"`
	ReadTimeout     time.Duration `mapstructure:"read_timeout"`
	WriteTimeout    time.Duration `mapstructure:"write_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// ClickRate and ClickBurst bound the clicks one client address may log:
	// a token bucket, ClickRate a second (0: no bound) and ClickBurst at once.
	ClickRate  float64 `mapstructure:"click_rate"`
	ClickBurst int     `mapstructure:"click_burst"`
}

// Search bounds search requests.
type Search struct {
	DefaultSize   int `mapstructure:"default_size"`
	MaxSize       int `mapstructure:"max_size"`
	MaxFrom       int `mapstructure:"max_from"`
	MaxQueryBytes int `mapstructure:"max_query_bytes"`
	SnippetChars  int `mapstructure:"snippet_chars"`
}

// BM25 sets the first stage's scoring.
type BM25 struct {
	K1       float64 `mapstructure:"k1"`
	B        float64 `mapstructure:"b"`
	Analyzer string  `mapstructure:"analyzer"`
}

// Rerank sets the second stage.
type Rerank struct {
	Window       int           `mapstructure:"window"`
	MaxWindow    int           `mapstructure:"max_window"`
	Deadline     time.Duration `mapstructure:"deadline"`
	PluginPath   string        `mapstructure:"plugin_path"`
	ModelPath    string        `mapstructure:"model_path"`
	MaxDocuments int           `mapstructure:"max_documents"`
	APIKey       string        `mapstructure:"api_key"`
	MaxLength    int           `mapstructure:"max_length"`
	Threads      int           `mapstructure:"threads"`
	Device       string        `mapstructure:"device"`
	Precision    string        `mapstructure:"precision"`
	Cascade      Cascade       `mapstructure:"cascade"`
}

// Cascade is a next stage after the serving model: another model (a
// cross-encoder after a fused bi-encoder) reorders the top Top of its order
// within Timeout, else the search keeps the previous order.
type Cascade struct {
	ModelPath string        `mapstructure:"model_path"`
	Top       int           `mapstructure:"top"`
	Timeout   time.Duration `mapstructure:"timeout"`
}

// Retrain sets the closed loop: when the host retrains its reranker from its
// click log, how, and what a candidate must show before it serves.
type Retrain struct {
	ModelsDir     string        `mapstructure:"models_dir"`
	EveryClicks   int           `mapstructure:"every_clicks"`
	Every         time.Duration `mapstructure:"every"`
	CheckInterval time.Duration `mapstructure:"check_interval"`
	MinClicks     int           `mapstructure:"min_clicks"`

	Judgments       string  `mapstructure:"judgments"`
	JudgmentsSplit  string  `mapstructure:"judgments_split"`
	EvalDepth       int     `mapstructure:"eval_depth"`
	EvalQueries     int     `mapstructure:"eval_queries"`
	HoldoutFraction float64 `mapstructure:"holdout_fraction"`

	ClickLabels       string  `mapstructure:"click_labels"`
	MinDwellMS        int64   `mapstructure:"min_dwell_ms"`
	HardNegatives     int     `mapstructure:"hard_negatives"`
	MaxPairs          int     `mapstructure:"max_pairs"`
	ValidationQueries int     `mapstructure:"validation_queries"`
	Epochs            int     `mapstructure:"epochs"`
	LearningRate      float64 `mapstructure:"learning_rate"`
	BatchSize         int     `mapstructure:"batch_size"`
	MaxLength         int     `mapstructure:"max_length"`
	EvalSteps         int     `mapstructure:"eval_steps"`
	Seed              uint64  `mapstructure:"seed"`

	GateMargin float64 `mapstructure:"gate_margin"`
	GateAlpha  float64 `mapstructure:"gate_alpha"`
	// GateBM25Floor rejects candidates below BM25 alone (evalharness/gate).
	GateBM25Floor bool `mapstructure:"gate_bm25_floor"`
	// SwapOnClickLabels lets a candidate judged only on held-out click labels
	// (no retrain.judgments) be swapped in automatically.
	SwapOnClickLabels bool `mapstructure:"swap_on_click_labels"`
}

// ModelsPath is where retraining writes checkpoints: retrain.models_dir, or
// <data_dir>/models.
func (c Config) ModelsPath() string {
	if c.Retrain.ModelsDir != "" {
		return c.Retrain.ModelsDir
	}
	return filepath.Join(c.DataDir, "models")
}

// Experiment sets the defaults of online comparisons between model versions.
type Experiment struct {
	MinSearches int     `mapstructure:"min_searches"`
	Alpha       float64 `mapstructure:"alpha"`
	MaxSearches int     `mapstructure:"max_searches"`
	AutoStop    bool    `mapstructure:"auto_stop"`
}

// Replica makes this host follow another host's model registry: the
// primary retrains, swaps and rolls back; this host serves the primary's
// serving version, copied into its own data folder.
type Replica struct {
	Primary string        `mapstructure:"primary"`
	Poll    time.Duration `mapstructure:"poll"`
	Token   string        `mapstructure:"token"`
	Name    string        `mapstructure:"name"`
}

// ReplicaToken is the primary's admin token a follower sends:
// replica.token, else this host's admin_token.
func (c Config) ReplicaToken() string {
	if c.Replica.Token != "" {
		return c.Replica.Token
	}
	return c.AdminToken
}

// UBI is where an OpenSearch cluster's User Behavior Insights logs are read
// from (rerank logs import-ubi; with Every, serve imports them itself).
type UBI struct {
	Cluster      string        `mapstructure:"cluster"`
	Every        time.Duration `mapstructure:"every"`
	Lookback     time.Duration `mapstructure:"lookback"`
	QueriesIndex string        `mapstructure:"queries_index"`
	EventsIndex  string        `mapstructure:"events_index"`
	Actions      []string      `mapstructure:"actions"`
	CopyDocsFrom string        `mapstructure:"copy_docs_from"`
	TitleField   string        `mapstructure:"title_field"`
	TextField    string        `mapstructure:"text_field"`
	PageSize     int           `mapstructure:"page_size"`
}

// ClickLog sets how search and click events are kept.
type ClickLog struct {
	Retention       time.Duration `mapstructure:"retention"`
	HashUserIDs     bool          `mapstructure:"hash_user_ids"`
	HashKey         string        `mapstructure:"hash_key"`
	DurableSearches bool          `mapstructure:"durable_searches"`
}

// hashKeyFile holds the generated user-id hash key inside the data folder.
const hashKeyFile = "userhash.key"

// UserHashKey is the key for hashing user and session ids: clicklog.hash_key
// when set, else a random key made on first use and kept in
// <data_dir>/userhash.key, so every command on the same data folder hashes
// ids the same way.
func (c Config) UserHashKey() (string, error) {
	if c.ClickLog.HashKey != "" {
		return c.ClickLog.HashKey, nil
	}
	path := filepath.Join(c.DataDir, hashKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, nil
		}
		return "", fmt.Errorf("%s is empty: delete it to make a new key (hashed ids will change) or restore it", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(c.DataDir, 0o750); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := hex.EncodeToString(raw)
	// Written whole to a temporary file, then linked into place: a reader
	// never sees a partial key, and if another process won the race, its
	// key is the one used.
	tmp, err := os.CreateTemp(c.DataDir, hashKeyFile+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(key + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err != nil {
		return "", err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return c.UserHashKey()
	} else if err != nil {
		return "", err
	}
	return key, nil
}

// Flag names shared by every command that reads the host's state.
const (
	FlagConfig  = "config"
	FlagListen  = "listen"
	FlagIndex   = "index"
	FlagDataDir = "data-dir"
	// FlagRerankOnly is serve's alone.
	FlagRerankOnly = "rerank-only"
)

// flagKeys maps each state flag to its configuration key.
var flagKeys = map[string]string{
	FlagListen:     "listen",
	FlagIndex:      "index_dir",
	FlagDataDir:    "data_dir",
	FlagRerankOnly: "rerank_only",
}

// AddFlags registers --config, --listen, --index and --data-dir on fs. Their
// defaults are empty: an unset flag leaves the file, environment or built-in
// value in place.
func AddFlags(fs *pflag.FlagSet) {
	fs.String(FlagConfig, "", "configuration file (YAML; default: built-in defaults, or $"+EnvPrefix+"_CONFIG)")
	fs.String(FlagListen, "", "HTTP listen address host:port (default 127.0.0.1:8080)")
	fs.String(FlagIndex, "", "search index folder (default <data-dir>/index)")
	fs.String(FlagDataDir, "", "folder for the click log and models (default ./data)")
}

// Load reads the configuration for a command whose flags were registered with
// AddFlags (fs may be nil: no flags).
func Load(fs *pflag.FlagSet) (Config, error) {
	v := viper.New()
	if err := setDefaults(v); err != nil {
		return Config{}, err
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	file := os.Getenv(EnvPrefix + "_CONFIG")
	if fs != nil {
		if f := fs.Lookup(FlagConfig); f != nil && f.Changed {
			file = f.Value.String()
		}
		for name, key := range flagKeys {
			// Bind only flags given on the command line: viper would otherwise
			// treat an unset flag's empty default as a value.
			if f := fs.Lookup(name); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, err
				}
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", file, err)
		}
	}

	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		if file != "" {
			return Config{}, fmt.Errorf("config %s: %w", file, err)
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.file = file
	if c.IndexDir == "" {
		c.IndexDir = filepath.Join(c.DataDir, "index")
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// setDefaults makes every key of the embedded rerank.yaml a default, which
// also makes every key known to the environment lookup.
func setDefaults(v *viper.Viper) error {
	d := viper.New()
	d.SetConfigType("yaml")
	if err := d.ReadConfig(bytes.NewReader(defaultYAML)); err != nil {
		return fmt.Errorf("built-in rerank.yaml: %w", err)
	}
	for _, k := range d.AllKeys() {
		v.SetDefault(k, d.Get(k))
	}
	return nil
}

// validate reports every setting out of range, naming its key.
func (c Config) validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "want host:port, got %q", c.Listen)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		bad("http.max_body_bytes", "want at least 1024, got %d", c.HTTP.MaxBodyBytes)
	}
	if !(c.HTTP.ClickRate >= 0) || c.HTTP.ClickRate > 0 && c.HTTP.ClickBurst < 1 {
		bad("http.click_rate", "want 0 (no bound) or a positive rate with click_burst at least 1, got %g and %d", c.HTTP.ClickRate, c.HTTP.ClickBurst)
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"http.read_timeout", c.HTTP.ReadTimeout}, {"http.write_timeout", c.HTTP.WriteTimeout},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout}, {"rerank.deadline", c.Rerank.Deadline},
		{"rerank.cascade.timeout", c.Rerank.Cascade.Timeout},
	} {
		if d.d <= 0 {
			bad(d.key, "want a positive duration, got %s", d.d)
		}
	}
	s := c.Search
	// The click log keeps at most 1,000 results per search and 8 KiB queries.
	if s.MaxSize < 1 || s.MaxSize > 1000 {
		bad("search.max_size", "want 1 to 1000, got %d", s.MaxSize)
	}
	if s.DefaultSize < 1 || s.DefaultSize > s.MaxSize {
		bad("search.default_size", "want 1 to search.max_size (%d), got %d", s.MaxSize, s.DefaultSize)
	}
	if s.MaxFrom < 0 {
		bad("search.max_from", "want 0 or more, got %d", s.MaxFrom)
	}
	if s.MaxQueryBytes < 1 || s.MaxQueryBytes > 8192 {
		bad("search.max_query_bytes", "want 1 to 8192, got %d", s.MaxQueryBytes)
	}
	if s.SnippetChars < 1 {
		bad("search.snippet_chars", "want at least 1, got %d", s.SnippetChars)
	}
	if !(c.BM25.K1 > 0) || c.BM25.K1 > 10 {
		bad("bm25.k1", "want more than 0 and at most 10, got %g", c.BM25.K1)
	}
	if !(c.BM25.B >= 0 && c.BM25.B <= 1) {
		bad("bm25.b", "want 0 to 1, got %g", c.BM25.B)
	}
	if c.BM25.Analyzer != "en" && c.BM25.Analyzer != "standard" {
		bad("bm25.analyzer", "want en or standard, got %q", c.BM25.Analyzer)
	}
	r := c.Rerank
	if r.MaxWindow < 1 {
		bad("rerank.max_window", "want at least 1, got %d", r.MaxWindow)
	}
	if r.Window < 1 || r.Window > r.MaxWindow {
		bad("rerank.window", "want 1 to rerank.max_window (%d), got %d", r.MaxWindow, r.Window)
	}
	if r.MaxDocuments < 1 {
		bad("rerank.max_documents", "want at least 1, got %d", r.MaxDocuments)
	}
	if r.MaxLength < 0 || r.MaxLength > 512 {
		bad("rerank.max_length", "want 0 (the plugin's default) to 512, got %d", r.MaxLength)
	}
	if r.Threads < 0 {
		bad("rerank.threads", "want 0 (libtorch's default) or more, got %d", r.Threads)
	}
	switch r.Device {
	case "auto", "cpu", "cuda":
	default:
		bad("rerank.device", "want auto, cpu or cuda, got %q", r.Device)
	}
	switch r.Precision {
	case "auto", "fp32", "bf16", "fp16":
	default:
		bad("rerank.precision", "want auto, fp32, bf16 or fp16, got %q", r.Precision)
	}
	if r.Cascade.Top < 1 {
		bad("rerank.cascade.top", "want at least 1, got %d", r.Cascade.Top)
	}
	if r.Cascade.ModelPath != "" && r.ModelPath == "" && c.Replica.Primary == "" {
		bad("rerank.cascade.model_path", "the cascade reranks the serving model's order: it needs rerank.model_path (or replica.primary) too")
	}
	if p := c.UBI.Cluster; p != "" {
		if u, err := url.Parse(p); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("ubi.cluster", "want the OpenSearch node's URL, http://HOST:9200, got %q", p)
		}
	}
	if c.UBI.Every < 0 || c.UBI.Every > 0 && c.UBI.Every < time.Second {
		bad("ubi.every", "want 0 (serve does not import) or at least 1s, got %s", c.UBI.Every)
	}
	if c.UBI.Every > 0 && c.UBI.Cluster == "" {
		bad("ubi.every", "serve imports UBI logs every %s from ubi.cluster, which is not set", c.UBI.Every)
	}
	if c.UBI.Lookback < 0 {
		bad("ubi.lookback", "want 0 or more, got %s", c.UBI.Lookback)
	}
	if c.UBI.QueriesIndex == "" || c.UBI.EventsIndex == "" || c.UBI.TextField == "" {
		bad("ubi", "queries_index, events_index and text_field must not be empty")
	}
	if len(c.UBI.Actions) == 0 || slices.Contains(c.UBI.Actions, "") {
		bad("ubi.actions", "want one or more action names that are clicks, got %q", c.UBI.Actions)
	}
	if c.UBI.PageSize < 1 || c.UBI.PageSize > 10000 {
		bad("ubi.page_size", "want 1 to 10000, got %d", c.UBI.PageSize)
	}
	if p := c.Replica.Primary; p != "" {
		if u, err := url.Parse(p); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("replica.primary", "want the primary host's base URL, http://HOST:PORT, got %q", p)
		}
		if c.Replica.Poll < 100*time.Millisecond {
			bad("replica.poll", "want at least 100ms, got %s", c.Replica.Poll)
		}
		if c.UBI.Every > 0 {
			bad("ubi.every", "a replica does not retrain: import the cluster's UBI logs on the primary")
		}
		if c.ReplicaToken() == "" {
			bad("replica.token", "a replica reads the primary's admin API: set replica.token (or admin_token) to the primary's admin_token")
		}
	}
	c.Retrain.validate(bad)
	x := c.Experiment
	if x.MinSearches < 0 || x.MaxSearches < 0 || (x.MaxSearches > 0 && x.MaxSearches < x.MinSearches) {
		bad("experiment.max_searches", "want 0 (no limit) or at least experiment.min_searches (%d), and min_searches not negative; got %d", x.MinSearches, x.MaxSearches)
	}
	if !(x.Alpha > 0 && x.Alpha < 1) {
		bad("experiment.alpha", "want more than 0 and less than 1, got %g", x.Alpha)
	}
	if c.ClickLog.Retention < 0 {
		bad("clicklog.retention", "want 0 (keep forever) or a positive duration, got %s", c.ClickLog.Retention)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

func (r Retrain) validate(bad func(key, format string, args ...any)) {
	if r.EveryClicks < 0 {
		bad("retrain.every_clicks", "want 0 (off) or more, got %d", r.EveryClicks)
	}
	if r.Every < 0 {
		bad("retrain.every", "want 0s (off) or a positive duration, got %s", r.Every)
	}
	if r.CheckInterval <= 0 {
		bad("retrain.check_interval", "want a positive duration, got %s", r.CheckInterval)
	}
	if r.MinClicks < 1 {
		bad("retrain.min_clicks", "want at least 1, got %d", r.MinClicks)
	}
	if r.EvalDepth < 1 {
		bad("retrain.eval_depth", "want at least 1, got %d", r.EvalDepth)
	}
	if r.EvalQueries < 0 || r.ValidationQueries < 0 || r.MaxPairs < 0 || r.HardNegatives < 0 || r.MinDwellMS < 0 {
		bad("retrain", "eval_queries, validation_queries, max_pairs, hard_negatives and min_dwell_ms must not be negative")
	}
	if !(r.HoldoutFraction > 0 && r.HoldoutFraction < 1) {
		bad("retrain.holdout_fraction", "want more than 0 and less than 1, got %g", r.HoldoutFraction)
	}
	if r.ClickLabels != "graded" && r.ClickLabels != "ipw" {
		bad("retrain.click_labels", "want graded or ipw, got %q", r.ClickLabels)
	}
	if r.Epochs < 1 || r.BatchSize < 1 || r.EvalSteps < 1 {
		bad("retrain", "epochs, batch_size and eval_steps must be at least 1 (got %d, %d, %d)", r.Epochs, r.BatchSize, r.EvalSteps)
	}
	if !(r.LearningRate > 0 && r.LearningRate < 1) {
		bad("retrain.learning_rate", "want more than 0 and less than 1, got %g", r.LearningRate)
	}
	if r.MaxLength < 8 || r.MaxLength > 512 {
		bad("retrain.max_length", "want 8 to 512, got %d", r.MaxLength)
	}
	if !(r.GateMargin >= 0) {
		bad("retrain.gate_margin", "want 0 or more, got %g", r.GateMargin)
	}
	if !(r.GateAlpha > 0 && r.GateAlpha <= 1) {
		bad("retrain.gate_alpha", "want more than 0 and at most 1, got %g", r.GateAlpha)
	}
}
