package configs

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestDefaultsAreTheDocumentedFile(t *testing.T) {
	t.Setenv("RERANK_CONFIG", "")
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Rerank.Window != 50 || c.BM25.K1 != 0.9 || c.BM25.B != 0.4 ||
		c.BM25.Analyzer != "en" || c.Rerank.Deadline != 500*time.Millisecond || c.Search.DefaultSize != 10 {
		t.Fatalf("defaults differ from rerank.yaml: %+v", c)
	}
	if c.IndexDir != "data/index" {
		t.Fatalf("index_dir default: got %q, want data/index", c.IndexDir)
	}
}

func TestPrecedenceFlagOverEnvOverFile(t *testing.T) {
	t.Setenv("RERANK_RERANK_WINDOW", "30")
	t.Setenv("RERANK_LISTEN", "127.0.0.1:7000")
	c, err := Load(flags(t, "--config", "testdata/custom.yaml", "--listen", "127.0.0.1:6000"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:6000" {
		t.Errorf("listen: flag should win, got %q", c.Listen)
	}
	if c.Rerank.Window != 30 {
		t.Errorf("rerank.window: env should beat the file, got %d", c.Rerank.Window)
	}
	if c.Rerank.Deadline != 250*time.Millisecond || c.BM25.Analyzer != "standard" {
		t.Errorf("file values not applied: %+v", c.Rerank)
	}
	if c.IndexDir != "/var/lib/rerank/index" {
		t.Errorf("index_dir should follow data_dir, got %q", c.IndexDir)
	}
	if c.File() != "testdata/custom.yaml" {
		t.Errorf("File: got %q", c.File())
	}
}

func TestStateFlags(t *testing.T) {
	t.Setenv("RERANK_CONFIG", "")
	c, err := Load(flags(t, "--data-dir", "/tmp/x", "--index", "/srv/idx"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/tmp/x" || c.IndexDir != "/srv/idx" {
		t.Fatalf("got data %q index %q", c.DataDir, c.IndexDir)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown key in file", nil, []string{"--config", "testdata/typo.yaml"}, "windw"},
		{"missing file", nil, []string{"--config", "testdata/nope.yaml"}, "nope.yaml"},
		{"window above max", map[string]string{"RERANK_RERANK_WINDOW": "500"}, nil, "rerank.window"},
		{"bad analyzer", map[string]string{"RERANK_BM25_ANALYZER": "fr"}, nil, "bm25.analyzer"},
		{"bad b", map[string]string{"RERANK_BM25_B": "1.5"}, nil, "bm25.b"},
		{"bad duration", map[string]string{"RERANK_RERANK_DEADLINE": "soon"}, nil, "deadline"},
		{"bad listen", nil, []string{"--listen", "8080"}, "listen"},
		{"bad precision", map[string]string{"RERANK_RERANK_PRECISION": "int8"}, nil, `rerank.precision: want auto, fp32, bf16 or fp16, got "int8"`},
		{"cascade top below 1", map[string]string{"RERANK_RERANK_CASCADE_TOP": "0"}, nil, "rerank.cascade.top: want at least 1, got 0"},
		{"cascade timeout 0", map[string]string{"RERANK_RERANK_CASCADE_TIMEOUT": "0s"}, nil, "rerank.cascade.timeout"},
		{"cascade without a serving model", map[string]string{"RERANK_RERANK_CASCADE_MODEL_PATH": "ce"}, nil, "rerank.cascade.model_path: the cascade reranks the serving model's order: it needs rerank.model_path"},
		{"replica of no URL", map[string]string{"RERANK_REPLICA_PRIMARY": "10.0.0.5:8080", "RERANK_ADMIN_TOKEN": "t"}, nil, `replica.primary: want the primary host's base URL, http://HOST:PORT, got "10.0.0.5:8080"`},
		{"replica without a token", map[string]string{"RERANK_REPLICA_PRIMARY": "http://10.0.0.5:8080"}, nil, "replica.token: a replica reads the primary's admin API"},
		{"ubi import without a cluster", map[string]string{"RERANK_UBI_EVERY": "1m"}, nil, "ubi.every: serve imports UBI logs every 1m0s from ubi.cluster, which is not set"},
		{"ubi cluster not a URL", map[string]string{"RERANK_UBI_CLUSTER": "localhost"}, nil, `ubi.cluster: want the OpenSearch node's URL`},
		{"replica polling too often", map[string]string{"RERANK_REPLICA_PRIMARY": "http://p:1", "RERANK_REPLICA_TOKEN": "t", "RERANK_REPLICA_POLL": "1ms"}, nil, "replica.poll: want at least 100ms, got 1ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("RERANK_CONFIG", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Load(flags(t, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// Every Config field must be a documented key of rerank.yaml, because that file
// is both the documentation and the defaults.
func TestEveryFieldIsInTheYAML(t *testing.T) {
	d := viper.New()
	d.SetConfigType("yaml")
	if err := d.ReadConfig(bytes.NewReader(defaultYAML)); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, typ reflect.Type)
	n := 0
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("mapstructure")
			if tag == "" {
				continue
			}
			key := prefix + tag
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == typ.PkgPath() {
				walk(key+".", f.Type)
				continue
			}
			n++
			if !d.IsSet(key) {
				t.Errorf("field %s (key %s) is missing from rerank.yaml", f.Name, key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	if n < 20 {
		t.Fatalf("walked only %d keys", n)
	}
}

func TestUserHashKeyIsMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	c := Config{DataDir: dir}
	k1, err := c.UserHashKey()
	if err != nil || len(k1) != 64 {
		t.Fatalf("key %q, %v", k1, err)
	}
	k2, err := c.UserHashKey()
	if err != nil || k2 != k1 {
		t.Fatalf("second call gave %q, want the kept %q", k2, k1)
	}
	c.ClickLog.HashKey = "configured"
	if k, _ := c.UserHashKey(); k != "configured" {
		t.Fatalf("configured key ignored: %q", k)
	}
}

func TestUBIFromTheEnvironment(t *testing.T) {
	t.Setenv("RERANK_CONFIG", "")
	t.Setenv("RERANK_UBI_CLUSTER", "http://127.0.0.1:9200")
	t.Setenv("RERANK_UBI_ACTIONS", "click,add_to_cart")
	t.Setenv("RERANK_UBI_EVERY", "30s")
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.UBI.Actions, []string{"click", "add_to_cart"}) || c.UBI.Every != 30*time.Second || c.UBI.Lookback != 10*time.Minute {
		t.Fatalf("ubi: %+v", c.UBI)
	}
}
