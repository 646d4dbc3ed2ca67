package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rerankloop/rerank/plugin/contract"
)

// report is training_report.json.
type report struct {
	BaseModel       string               `json:"base_model"`
	BaseModelSHA256 string               `json:"base_model_sha256"`
	InitialisedHead []string             `json:"initialised_head,omitempty"`
	OutDir          string               `json:"out_dir"`
	BestCheckpoint  string               `json:"best_checkpoint"`
	LastCheckpoint  string               `json:"last_checkpoint"`
	BestStep        int                  `json:"best_step"`
	Stopped         string               `json:"stopped"`
	Message         string               `json:"message"`
	Finished        time.Time            `json:"finished"`
	Environment     Versions             `json:"environment"`
	Config          contract.TrainConfig `json:"config"`
	Data            dataSummary          `json:"data"`
	FirstStage      *contract.EvalPoint  `json:"first_stage,omitempty"`
	Base            contract.EvalPoint   `json:"base"`
	Best            contract.EvalPoint   `json:"best"`
	Curve           []contract.EvalPoint `json:"curve"`
	Steps           int                  `json:"steps"`
	TotalSteps      int                  `json:"total_steps"`
	WarmupSteps     int                  `json:"warmup_steps"`
	Epochs          float64              `json:"epochs"`
	PairsPerSecond  float64              `json:"pairs_per_second"`
	TrainSeconds    float64              `json:"train_seconds"`
	// StepSeconds splits this session's step time (TrainSeconds counts
	// every session of a resumed run).
	StepSeconds phaseTimes `json:"step_seconds"`
	ResumedFrom int        `json:"resumed_from_step,omitempty"`
	Warnings    []string   `json:"warnings"`
	Log         []string   `json:"log"`
}

type dataSummary struct {
	Source          string          `json:"source"`
	TrainPairs      int             `json:"train_pairs"`
	TrainQueries    int             `json:"train_queries"`
	Labels          map[string]int  `json:"train_labels"`
	ValQueries      int             `json:"validation_queries"`
	ValCandidates   int             `json:"validation_candidates"`
	ValInputs       int             `json:"validation_inputs"`
	PreparationJSON json.RawMessage `json:"preparation,omitempty"`
}

// writeReport writes training_report.json and the model card (README.md)
// into the output folder and into the best checkpoint.
func (t *trainer) writeReport(res contract.FinetuneResult) error {
	r := &t.rep
	r.BaseModel, r.OutDir, r.Config = t.req.BaseModel, t.out, t.cfg
	r.BestCheckpoint, r.LastCheckpoint, r.BestStep = res.BestCheckpoint, res.LastCheckpoint, res.BestStep
	r.Stopped, r.Message, r.Finished = res.Stopped, res.Message, time.Now().UTC()
	r.Base, r.Best, r.Curve = res.Base, res.Best, res.Curve
	r.Steps, r.TotalSteps, r.WarmupSteps, r.Epochs = res.Steps, t.total, t.sched.Warmup, t.st.Epoch
	r.PairsPerSecond, r.TrainSeconds, r.StepSeconds = res.PairsPerSecond, res.TrainSeconds, t.phases
	r.Data = dataSummary{Source: t.req.DataSource, TrainPairs: len(t.ex), TrainQueries: countGroups(t.ex), Labels: map[string]int{},
		ValQueries: len(t.req.Validation)}
	for _, e := range t.ex {
		r.Data.Labels[strconv.FormatFloat(e.label, 'g', -1, 64)]++
	}
	if t.val != nil {
		r.Data.ValInputs = len(t.val.pairs)
		for _, q := range t.val.queries {
			r.Data.ValCandidates += len(q.Candidates)
		}
		if len(t.val.queries) > 0 {
			if ndcg, mrr, err := t.val.firstStage(); err == nil {
				r.FirstStage = &contract.EvalPoint{NDCG10: ndcg, MRR10: mrr}
			}
		}
	}
	if js := []byte(t.req.DataReport); json.Valid(js) {
		r.Data.PreparationJSON = js
	}
	card := t.card()
	dirs := []string{t.out}
	if res.BestCheckpoint != "" {
		dirs = append(dirs, res.BestCheckpoint)
	}
	for _, d := range dirs {
		if err := writeJSON(filepath.Join(d, ReportFile), r); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, CardFile), []byte(card), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// card renders the model card.
func (t *trainer) card() string {
	r := &t.rep
	c := t.cfg
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Cross-encoder fine-tuned from %s\n\n", filepath.Base(filepath.Clean(r.BaseModel)))
	p("Fine-tuned by `rerank finetune` from `%s` (model.safetensors sha256 `%s`), finished %s.\n\n", r.BaseModel, short(r.BaseModelSHA256), r.Finished.Format(time.RFC3339))
	if r.BestCheckpoint != "" {
		p("**Best checkpoint:** `%s` (step %d of %d).", filepath.Base(r.BestCheckpoint), r.BestStep, r.TotalSteps)
		if r.Data.ValQueries > 0 {
			p(" Validation NDCG@10 %.4f, MRR@10 %.4f; the base model %.4f and %.4f", r.Best.NDCG10, r.Best.MRR10, r.Base.NDCG10, r.Base.MRR10)
			if r.FirstStage != nil {
				p("; the first stage's own order %.4f and %.4f", r.FirstStage.NDCG10, r.FirstStage.MRR10)
			}
			p(".")
		}
		p("\n\n")
	}
	p("**Stopped** (%s): %s\n\n", r.Stopped, r.Message)
	if len(r.InitialisedHead) > 0 {
		p("The base was a plain encoder: its classification head (%s) was initialised from seed %d.\n\n", strings.Join(r.InitialisedHead, ", "), c.Seed)
	}

	p("## Data\n\n")
	if r.Data.Source != "" {
		p("Source: %s\n\n", r.Data.Source)
	}
	p("- training: %d pairs over %d queries; labels %s\n", r.Data.TrainPairs, r.Data.TrainQueries, labelCounts(r.Data.Labels))
	p("- validation: %d queries, reranking their %d first-stage candidates (%d model inputs)\n", r.Data.ValQueries, r.Data.ValCandidates, r.Data.ValInputs)
	if c.Window {
		p("- long documents: trained on the first window of %d tokens; validated by the best window (stride %d)\n\n", c.MaxLength, min(evalStride, c.MaxLength/4))
	} else {
		p("- long documents: pairs truncated to %d tokens (longest first)\n\n", c.MaxLength)
	}

	p("## Hyperparameters\n\n| setting | value |\n|---|---|\n")
	p("| optimizer | AdamW (betas %g/%g, eps 1e-8), learning rate %g |\n", beta1, beta2, c.LearningRate)
	p("| schedule | linear warm-up over %d steps (%g), then linear decay to 0 at step %d |\n", r.WarmupSteps, c.WarmupRatio, r.TotalSteps)
	p("| weight decay | %g on weights; 0 on biases and LayerNorm |\n", c.WeightDecay)
	p("| batch size | %d |\n| epochs | %d (%d steps) |\n| max length | %d tokens |\n", c.BatchSize, c.Epochs, r.TotalSteps, c.MaxLength)
	loss := fmt.Sprintf("binary cross-entropy on label/%g", c.LabelMax)
	if c.Loss == contract.LossListwise {
		loss = "listwise softmax cross-entropy per query"
	}
	if c.PosWeight > 0 {
		loss += fmt.Sprintf(", positive weight %g", c.PosWeight)
	}
	p("| loss | %s, times each pair's weight |\n", loss)
	p("| gradient clipping | global L2 norm %g |\n| seed | %d |\n", c.MaxGradNorm, c.Seed)
	patience := "off"
	if c.Patience > 0 {
		patience = strconv.Itoa(c.Patience) + " evaluations"
	}
	p("| evaluation | every %d steps and at each epoch's end; early-stopping patience %s |\n", c.EvalSteps, patience)
	p("| divergence guard | loss NaN, infinite, or above %g times the running median %d steps in a row |\n\n", c.DivergenceFactor, highLossRun)

	p("## Validation curve\n\n| step | epoch | train loss | NDCG@10 | MRR@10 | eval seconds | |\n|---|---|---|---|---|---|---|\n")
	for _, e := range r.Curve {
		mark, loss := "", "–"
		if e.Step == r.BestStep {
			mark = "best"
		}
		if e.Step > 0 {
			loss = fmt.Sprintf("%.4f", e.TrainLoss)
		}
		p("| %d | %.2f | %s | %.4f | %.4f | %.1f | %s |\n", e.Step, e.Epoch, loss, e.NDCG10, e.MRR10, e.Seconds, mark)
	}
	p("\nTraining: %d steps in %.0f s, %.2f pairs/s.\n\n", r.Steps, r.TrainSeconds, r.PairsPerSecond)

	v := r.Environment
	p("## Environment\n\ngotch %s, libtorch %s (compiled against headers %s, loaded from %s), BLAS %s, %s, device %s; binary %s.\n\n",
		v.Gotch, v.TorchRuntime, v.TorchHeaders, v.TorchLibrary, v.BLAS, v.Go, v.Device, v.Binary)
	p("## Use\n\n```\nrerank predict --model %s --max-length %d", r.BestCheckpoint, c.MaxLength)
	if c.Window {
		p(" --window")
	}
	p(" QUERY DOCUMENT...\n```\n\nScore with the max length (and windowing) it was trained with.\n")
	if len(r.Warnings) > 0 {
		p("\n## Warnings\n\n")
		for _, w := range r.Warnings {
			p("- %s\n", w)
		}
	}
	return b.String()
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func labelCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.ParseFloat(keys[i], 64)
		b, _ := strconv.ParseFloat(keys[j], 64)
		return a < b
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
