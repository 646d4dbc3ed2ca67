package configs

import (
	"strings"
	"testing"
	"time"
)

func TestRetrainAndExperimentSettings(t *testing.T) {
	t.Setenv("RERANK_CONFIG", "")
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Retrain
	if r.EveryClicks != 0 || r.Every != 0 || r.CheckInterval != time.Minute || r.ClickLabels != "graded" || r.LearningRate != 3e-5 ||
		r.GateMargin != 0.005 || r.GateAlpha != 0.05 || !r.GateBM25Floor || c.Experiment.MinSearches != 100 || !c.Experiment.AutoStop {
		t.Fatalf("defaults differ from rerank.yaml: %+v %+v", r, c.Experiment)
	}
	if c.ModelsPath() != "data/models" {
		t.Errorf("models path %q", c.ModelsPath())
	}
	t.Setenv("RERANK_RETRAIN_EVERY_CLICKS", "500")
	t.Setenv("RERANK_RETRAIN_JUDGMENTS", "testdata/judged.jsonl")
	if c, err = Load(nil); err != nil || c.Retrain.EveryClicks != 500 || c.Retrain.Judgments != "testdata/judged.jsonl" {
		t.Fatalf("environment overrides: %+v %v", c.Retrain, err)
	}
	for key, val := range map[string]string{
		"RERANK_RETRAIN_CLICK_LABELS":     "ctr",
		"RERANK_RETRAIN_HOLDOUT_FRACTION": "1",
		"RERANK_RETRAIN_GATE_ALPHA":       "0",
		"RERANK_RETRAIN_MAX_LENGTH":       "4",
		"RERANK_EXPERIMENT_ALPHA":         "1.5",
		"RERANK_RERANK_DEVICE":            "tpu",
	} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, val)
			_, err := Load(nil)
			want := strings.ToLower(strings.Replace(strings.TrimPrefix(key, "RERANK_"), "_", ".", 1))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s=%s: %v, want an error naming %s", key, val, err, want)
			}
		})
	}
}
