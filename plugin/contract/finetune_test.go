package contract

import (
	"reflect"
	"testing"
	"time"
)

// Every field crosses the process boundary.
func TestFinetuneMessagesRoundTrip(t *testing.T) {
	req := FinetuneRequest{BaseModel: "/m", OutDir: "/o", Resume: true, DataSource: "beir x", DataReport: `{"a":1}`,
		Config: TrainConfig{Epochs: 2, LearningRate: 3e-5, BatchSize: 8, MaxLength: 256, Window: true, EvalSteps: 100, EvalBatchSize: 32,
			Patience: 3, Seed: 42, Loss: LossListwise, PosWeight: 2, LabelMax: 4, WarmupRatio: 0.1, WeightDecay: 0.01, MaxGradNorm: 1, DivergenceFactor: 10},
		Docs:       []Document{{ID: "d1", Text: "one"}, {ID: "d2", Text: "two"}},
		Train:      []TrainPair{{QueryID: "q", Query: "query", Doc: 1, Label: 3, Weight: 1.5}},
		Validation: []ValQuery{{QueryID: "v", Query: "val", Candidates: []int{1, 0}, Judged: map[string]int{"d1": 2, "d9": 1}, Scores: []float64{7.5, 3}}}}
	if got := finetuneFromPB(finetuneToPB(req)); !reflect.DeepEqual(got, req) {
		t.Errorf("request\n%+v\nbecame\n%+v", req, got)
	}
	p := FinetuneProgress{Step: 3, TotalSteps: 10, Epoch: 1, Loss: 0.5, LearningRate: 1e-5, GradNorm: 2, ETA: 90 * time.Second,
		PairsPerSecond: 4.5, Message: "m", Eval: &EvalPoint{Step: 3, Epoch: 0.3, NDCG10: 0.7, MRR10: 0.6, TrainLoss: 0.4, Best: true, Seconds: 12}}
	if got := progressFromPB(progressToPB(p)); !reflect.DeepEqual(got, p) {
		t.Errorf("progress\n%+v\nbecame\n%+v", p, got)
	}
	r := FinetuneResult{OutDir: "/o", BestCheckpoint: "/o/checkpoint-3", LastCheckpoint: "/o/checkpoint-10", BestStep: 3,
		Base: EvalPoint{NDCG10: 0.5}, Best: EvalPoint{Step: 3, NDCG10: 0.7}, Curve: []EvalPoint{{NDCG10: 0.5}, {Step: 3, NDCG10: 0.7}},
		Stopped: StopEarly, Message: "m", Steps: 10, PairsPerSecond: 4, TrainSeconds: 2.5, ReportPath: "/o/r.json"}
	if got := resultFromPB(resultToPB(r)); !reflect.DeepEqual(got, r) {
		t.Errorf("result\n%+v\nbecame\n%+v", r, got)
	}
}

func TestDocTableSendsEachDocumentOnce(t *testing.T) {
	var d DocTable
	a, b, a2, c := d.Add("1", "x"), d.Add("2", "y"), d.Add("1", "x"), d.Add("1", "other text")
	if a != 0 || b != 1 || a2 != 0 || c != 2 || len(d.Docs) != 3 {
		t.Fatalf("indexes %d %d %d %d, docs %v", a, b, a2, c, d.Docs)
	}
}
