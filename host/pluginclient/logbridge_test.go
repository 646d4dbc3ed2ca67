package pluginclient

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// syncBuffer is a log destination safe for the logging goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The plugin's warnings reach the host's logger as warnings: a plain
// encoder loaded as a cross-encoder gets a fresh head, which the engine warns
// about, and the operator must see it.
func TestPluginWarningReachesTheHostLog(t *testing.T) {
	var buf syncBuffer
	c := start(t, Options{Log: slog.New(slog.NewJSONHandler(&buf, nil))})
	enc := filepath.Join(t.TempDir(), "encoder")
	if err := checkpoint.WriteTiny(enc, 1); err != nil {
		t.Fatal(err)
	}
	w, err := checkpoint.ReadSafetensors(filepath.Join(enc, checkpoint.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	delete(w, "classifier.weight")
	delete(w, "classifier.bias")
	checkpoint.WriteSafetensors(filepath.Join(enc, checkpoint.WeightsFile), w)
	cfg, _ := os.ReadFile(filepath.Join(enc, checkpoint.ConfigFile))
	os.WriteFile(filepath.Join(enc, checkpoint.ConfigFile), bytes.Replace(cfg, []byte("BertForSequenceClassification"), []byte("BertModel"), 1), 0o644)
	if _, err := c.Load(context.Background(), contract.LoadRequest{Path: enc}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(buf.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["level"] == "WARN" && strings.Contains(e["msg"].(string), "fresh classification head") {
				if e["path"] != enc {
					t.Errorf("the warning lost its attributes: %v", e)
				}
				return
			}
		}
	}
	t.Fatalf("the plugin's warning is not in the host's log:\n%s", buf.String())
}
