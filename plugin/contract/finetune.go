package contract

import (
	"context"
	"errors"
	"time"
)

// Loss functions a fine-tune can use.
const (
	// LossBCE is binary cross-entropy on the logit with target label/LabelMax
	// (0/1 labels as they are, graded 0-4 labels divided by 4).
	LossBCE = "bce"
	// LossListwise is a softmax cross-entropy over each query's pairs in a
	// batch, the target distribution proportional to the labels.
	LossListwise = "listwise"
	// LossContrastive trains a bi-encoder (its only loss, and its default):
	// softmax cross-entropy over scaled cosine similarities of each query to
	// its positive, the batch's other positives and the mined hard negatives
	// (sentence-transformers' MultipleNegativesRankingLoss), weighted by
	// label and pair weight.
	LossContrastive = "contrastive"
)

// Why a fine-tune stopped (FinetuneResult.Stopped).
const (
	StopCompleted = "completed"
	StopEarly     = "early_stopped" // patience ran out
	StopCancelled = "cancelled"
	StopDiverged  = "diverged" // NaN or exploding loss
	StopFailed    = "failed"   // an error; the checkpoints so far are kept
)

// TrainConfig holds the hyperparameters; zero values take the defaults the
// trainer documents (learning rate 3e-5, batch 8, 2 epochs, ...).
type TrainConfig struct {
	Epochs       int
	LearningRate float64
	BatchSize    int
	// MaxLength truncates each pair, in tokens; Window trains on the first
	// window of a long document instead (the query keeps at most half).
	MaxLength int
	Window    bool
	// EvalSteps is how often the validation queries are reranked; every
	// epoch's end is evaluated too.
	EvalSteps     int
	EvalBatchSize int
	// Patience stops training after this many evaluations without a better
	// NDCG@10 (0: never stop early).
	Patience  int
	Seed      uint64
	Loss      string  // LossBCE (default) or LossListwise
	PosWeight float64 // BCE weight of positive pairs (0: none)
	// LabelMax maps labels to [0, 1] for BCE: 1 for binary, 4 for graded.
	LabelMax         float64
	WarmupRatio      float64
	WeightDecay      float64
	MaxGradNorm      float64
	DivergenceFactor float64 // losses above this times the running median, 3 steps in a row, stop training
}

// TrainPair is one training example; Doc indexes FinetuneRequest.Docs.
type TrainPair struct {
	QueryID, Query string
	Doc            int
	Label          float64
	Weight         float64 // scales the pair's loss; 0 is read as 1
}

// ValQuery is one validation query: the first stage's candidates (indexes
// into FinetuneRequest.Docs, first-stage order) and the judged documents by
// ID, labels 0-4 (judged documents the first stage missed still count).
type ValQuery struct {
	QueryID, Query string
	Candidates     []int
	Judged         map[string]int
	// Scores are the first stage's scores of Candidates (nil: unknown); a
	// bi-encoder is validated fused with them.
	Scores []float64
}

// FinetuneRequest trains BaseModel (a checkpoint folder) into OutDir.
type FinetuneRequest struct {
	BaseModel string
	OutDir    string
	// Resume continues from the last checkpoint in OutDir.
	Resume     bool
	Config     TrainConfig
	Docs       []Document
	Train      []TrainPair
	Validation []ValQuery
	// DataSource describes the data for the model card (source, split,
	// window); DataReport is the data preparation's JSON report.
	DataSource string
	DataReport string
}

// EvalPoint is one validation of the curve; step 0 is the base model.
type EvalPoint struct {
	Step      int
	Epoch     float64
	NDCG10    float64
	MRR10     float64
	TrainLoss float64 // mean training loss since the previous evaluation
	Best      bool    // best so far when it was measured
	Seconds   float64 // how long the evaluation took
}

// FinetuneProgress is streamed after every step, with Eval set when the
// step was evaluated and Message set for log lines (versions, warnings).
type FinetuneProgress struct {
	Step, TotalSteps, Epoch int
	Loss, LearningRate      float64
	GradNorm                float64
	Eval                    *EvalPoint
	ETA                     time.Duration
	PairsPerSecond          float64
	Message                 string
}

// FinetuneResult says where the best checkpoint is and how training went.
type FinetuneResult struct {
	OutDir         string
	BestCheckpoint string
	LastCheckpoint string
	BestStep       int
	Base, Best     EvalPoint
	Curve          []EvalPoint
	Stopped        string
	Message        string
	Steps          int
	PairsPerSecond float64
	TrainSeconds   float64
	ReportPath     string
}

// Trainer fine-tunes models; the plugin serves it as its own entry
// (TrainerPluginName) beside the Reranker. Cancelling ctx stops training after the current step; the
// checkpoints are kept and the result so far is returned with ctx's error.
type Trainer interface {
	Finetune(ctx context.Context, req FinetuneRequest, progress func(FinetuneProgress)) (FinetuneResult, error)
}

// Errors a Trainer returns.
var (
	// ErrBusy: a fine-tune is already running in the plugin.
	ErrBusy = errors.New("a fine-tune is already running")
)

// DocTable collects a FinetuneRequest's Docs: each (id, text) is sent once,
// and pairs and candidates refer to it by index.
type DocTable struct {
	Docs []Document
	at   map[[2]string]int
}

// Add returns the index of (id, text), adding it if new.
func (t *DocTable) Add(id, text string) int {
	k := [2]string{id, text}
	if i, ok := t.at[k]; ok {
		return i
	}
	if t.at == nil {
		t.at = map[[2]string]int{}
	}
	t.at[k] = len(t.Docs)
	t.Docs = append(t.Docs, Document{ID: id, Text: text})
	return len(t.Docs) - 1
}
