package train

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// A MiniLM-sized bi-encoder trains on texts of many lengths for 24 steps:
// measured after the heap trims (steps 8, 16 and 24), the process must grow
// by less than 700 MB. Without the trims it grew by 3.9 GB (4.4 -> 8.2 GB);
// with them but libtorch's C++ AdamW (gotch's) by 1.4 GB (1.2 -> 2.6 GB),
// some 50 MB a step; with the trims and the fused AdamW by 0.26 GB (0.62 ->
// 0.89 GB).
func TestTrainingMemoryStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a MiniLM-sized model for 24 steps")
	}
	base := filepath.Join(t.TempDir(), "base")
	if err := checkpoint.WriteRandom(base, checkpoint.MiniLMConfig(), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Init(base, base, checkpoint.BiEncoder, 0); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	var docs []contract.Document
	var pairs []contract.TrainPair
	text := func() string {
		words := make([]string, 40+rng.IntN(200))
		for i := range words {
			words[i] = fillers[rng.IntN(len(fillers))] + topics[rng.IntN(len(topics))]
		}
		docs = append(docs, contract.Document{ID: fmt.Sprint(len(docs)), Text: strings.Join(words, " ")})
		return docs[len(docs)-1].ID
	}
	for q := range 16 * 24 {
		qid := fmt.Sprint("q", q)
		query := fmt.Sprintf("%s %d", topics[q%len(topics)], q)
		text()
		pairs = append(pairs, contract.TrainPair{QueryID: qid, Query: query, Doc: len(docs) - 1, Label: 1})
		text()
		pairs = append(pairs, contract.TrainPair{QueryID: qid, Query: query, Doc: len(docs) - 1, Label: 0})
	}
	req := contract.FinetuneRequest{BaseModel: base, OutDir: filepath.Join(t.TempDir(), "out"), Docs: docs, Train: pairs,
		DataSource: "random texts", Config: contract.TrainConfig{Epochs: 1, LearningRate: 2e-5, BatchSize: 16, MaxLength: 256,
			EvalSteps: 1000, Seed: 1, Loss: contract.LossContrastive}}
	rss := map[int]int64{}
	res, err := finetune(t, req, func(p contract.FinetuneProgress) {
		if p.Step%trimEvery == 0 {
			rss[p.Step] = residentBytes()
		}
	})
	if err != nil || res.Steps != 24 {
		t.Fatalf("%d steps: %v", res.Steps, err)
	}
	grew := rss[24] - rss[8]
	t.Logf("resident after steps 8, 16, 24: %d, %d, %d MB", rss[8]>>20, rss[16]>>20, rss[24]>>20)
	if rss[8] == 0 || grew > 700<<20 {
		t.Fatalf("the process grew by %d MB from step 8 to step 24", grew>>20)
	}
}

// residentBytes is the process's resident set size; 0 when unknown.
func residentBytes() int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
