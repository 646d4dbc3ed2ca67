package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Files and folders the trainer writes into the output folder.
const (
	StateFile        = "trainer_state.json"
	ReportFile       = "training_report.json"
	CardFile         = "README.md"
	checkpointPrefix = "checkpoint-"
)

// state is everything a run needs to continue after it was stopped or
// killed; it is saved as trainer_state.json in every checkpoint folder. The
// data order follows from the seed (each epoch's permutation) and dropout
// from seed and step, so the step is the whole position; AdamW's moments
// live in libtorch, cannot be read out through gotch and restart on resume.
type state struct {
	Step       int                  `json:"step"`
	TotalSteps int                  `json:"total_steps"`
	Epoch      float64              `json:"epoch"`
	Seed       uint64               `json:"seed"`
	DataHash   string               `json:"data_sha256"`
	BaseModel  string               `json:"base_model"`
	Config     contract.TrainConfig `json:"config"`
	BestStep   int                  `json:"best_step"`
	BestNDCG   float64              `json:"best_ndcg10"`
	SinceBest  int                  `json:"evaluations_since_best"`
	Curve      []contract.EvalPoint `json:"curve"`
	// RecentLosses is the divergence guard's window and HighLosses its count
	// of the latest steps in a row above it; LossSum and LossN the mean
	// training loss since the last evaluation.
	RecentLosses []float64 `json:"recent_losses"`
	HighLosses   int       `json:"high_losses"`
	LossSum      float64   `json:"loss_sum"`
	LossN        int       `json:"loss_n"`
	TrainSeconds float64   `json:"train_seconds"`
	PairsSeen    int       `json:"pairs_seen"`
	Note         string    `json:"note"`
}

const resumeNote = "data order follows from seed and epoch, dropout masks from seed and step, AdamW's moments from " + OptimizerFile

// OptimizerFile keeps AdamW's moments as they were at the last checkpoint,
// for a resumed run: beside the checkpoints rather than in them, so that a
// checkpoint stays a model folder that serves. A run that ends for good
// removes it.
const OptimizerFile = "optimizer.safetensors"

// checkpointStep names the tensor that says which checkpoint's moments
// OptimizerFile holds.
const checkpointStep = "checkpoint_step"

// saveOptimizer writes the moments at the current step to OptimizerFile.
func (t *trainer) saveOptimizer() error {
	st, err := t.opt.state()
	if err != nil {
		return err
	}
	st[checkpointStep] = checkpoint.Tensor{Shape: []int64{1}, Data: []float32{float32(t.st.Step)}}
	return checkpoint.WriteSafetensors(filepath.Join(t.out, OptimizerFile), st)
}

// restoreOptimizer reads the moments saved with the checkpoint resumed from.
func (t *trainer) restoreOptimizer() error {
	st, err := checkpoint.ReadSafetensors(filepath.Join(t.out, OptimizerFile))
	if err != nil {
		return err
	}
	if s := st[checkpointStep].Data; len(s) != 1 || int(s[0]) != t.st.Step {
		return fmt.Errorf("%s holds the moments of another step than checkpoint-%d's", OptimizerFile, t.st.Step)
	}
	delete(st, checkpointStep)
	return t.opt.restore(st)
}

func checkpointDir(out string, step int) string {
	return filepath.Join(out, checkpointPrefix+strconv.Itoa(step))
}

// checkpoints lists the steps of the checkpoint folders in out that hold a
// trainer state.
func checkpoints(out string) ([]int, error) {
	entries, err := os.ReadDir(out)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), checkpointPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		step, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, e.Name(), StateFile)); err == nil {
			steps = append(steps, step)
		}
	}
	return steps, nil
}

func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	return st, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return checkpoint.WriteFileDurable(path, append(b, '\n'))
}

// saveCheckpoint writes checkpoint-<step> (weights, config, tokenizer and
// the state) beside its final name and renames it into place, so a kill
// never leaves a half-written checkpoint; then it removes every checkpoint
// that is neither the best nor this one.
func (t *trainer) saveCheckpoint() error {
	final := checkpointDir(t.out, t.st.Step)
	tmp := filepath.Join(t.out, "."+filepath.Base(final)+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := t.model.Save(tmp, t.tokJSON); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if err := writeJSON(filepath.Join(tmp, StateFile), t.st); err != nil {
		return err
	}
	if t.fusion != nil {
		if err := fusion.Write(tmp, *t.fusion); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	// The new checkpoint is durable before any older one goes.
	if err := checkpoint.SyncDir(t.out); err != nil {
		return err
	}
	if t.st.Step > 0 {
		if err := t.saveOptimizer(); err != nil {
			return err
		}
	}
	t.lastSaved = t.st.Step
	steps, err := checkpoints(t.out)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if s != t.st.Step && s != t.st.BestStep {
			if err := os.RemoveAll(checkpointDir(t.out, s)); err != nil {
				return err
			}
		}
	}
	return nil
}
