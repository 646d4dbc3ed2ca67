package pluginclient

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
)

// slogWriter takes the JSON lines of an hclog logger (go-plugin's, which
// carries the plugin's own lines) and logs each to log at its level.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil {
			w.log.Info(string(line))
			continue
		}
		msg, _ := entry["@message"].(string)
		level := slog.LevelInfo
		switch lv, _ := entry["@level"].(string); strings.ToLower(lv) {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		attrs := make([]any, 0, 2*len(entry))
		for k, v := range entry {
			if !strings.HasPrefix(k, "@") {
				attrs = append(attrs, k, v)
			}
		}
		if m, _ := entry["@module"].(string); m != "" {
			attrs = append(attrs, "module", m)
		}
		w.log.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}
