package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// topics are single WordPiece tokens of the uncased BERT vocabulary.
var topics = strings.Fields("apple river music garden doctor planet winter coffee horse bridge camera forest island kitchen letter mountain ocean pencil rocket silver tiger violin window yellow engine castle desert dragon candle butter")

var fillers = strings.Fields("the a of and in to is was for on with as by at from that this it be are or an which has have had not but were they")

// synthetic is a separable task: a query names a topic, a document holds
// one topic among fillers, and it is relevant when the topics match (with
// marker, relevant documents also start with "indeed", which even a tiny
// model learns in a few steps). Training queries are "<topic> facts N",
// validation queries "about <topic>", each with one relevant and negatives
// irrelevant candidates.
type synthetic struct {
	docs  []contract.Document
	train []contract.TrainPair
	val   []contract.ValQuery
}

func makeSynthetic(seed uint64, trainQueries, negatives, valQueries int, marker bool) synthetic {
	rng := rand.New(rand.NewPCG(seed, 1))
	var s synthetic
	doc := func(topic string, relevant bool) int {
		words := make([]string, 6+rng.IntN(6))
		for i := range words {
			words[i] = fillers[rng.IntN(len(fillers))]
		}
		words[rng.IntN(len(words))] = topic
		if relevant && marker {
			words = append([]string{"indeed"}, words...)
		}
		s.docs = append(s.docs, contract.Document{ID: fmt.Sprintf("d%d", len(s.docs)), Text: strings.Join(words, " ")})
		return len(s.docs) - 1
	}
	other := func(topic string) string {
		for {
			if o := topics[rng.IntN(len(topics))]; o != topic {
				return o
			}
		}
	}
	for q := 0; q < trainQueries; q++ {
		topic := topics[q%len(topics)]
		qid, query := fmt.Sprintf("t%d", q), fmt.Sprintf("%s facts %d", topic, q)
		s.train = append(s.train, contract.TrainPair{QueryID: qid, Query: query, Doc: doc(topic, true), Label: 1})
		for n := 0; n < negatives; n++ {
			s.train = append(s.train, contract.TrainPair{QueryID: qid, Query: query, Doc: doc(other(topic), false), Label: 0})
		}
	}
	for q := 0; q < valQueries; q++ {
		topic := topics[q%len(topics)]
		pos := doc(topic, true)
		v := contract.ValQuery{QueryID: fmt.Sprintf("v%d", q), Query: "about " + topic, Judged: map[string]int{s.docs[pos].ID: 1}}
		for n := 0; n < 9; n++ {
			v.Candidates = append(v.Candidates, doc(other(topic), false))
		}
		// The relevant document sits in the middle of the first stage's order.
		v.Candidates = append(v.Candidates[:5], append([]int{pos}, v.Candidates[5:]...)...)
		s.val = append(s.val, v)
	}
	return s
}

// request is a fine-tune of a fresh tiny model (seed 7) on s into a
// temporary folder.
func (s synthetic) request(t *testing.T, cfg contract.TrainConfig) contract.FinetuneRequest {
	t.Helper()
	base := filepath.Join(t.TempDir(), "base")
	if err := checkpoint.WriteTiny(base, 7); err != nil {
		t.Fatal(err)
	}
	return contract.FinetuneRequest{BaseModel: base, OutDir: filepath.Join(t.TempDir(), "out"), Config: cfg,
		Docs: s.docs, Train: s.train, Validation: s.val, DataSource: "synthetic topics"}
}

func finetune(t testing.TB, req contract.FinetuneRequest, progress func(contract.FinetuneProgress)) (contract.FinetuneResult, error) {
	t.Helper()
	svc, err := NewService("cpu", 0)
	if err != nil {
		t.Fatal(err)
	}
	return svc.Finetune(context.Background(), req, progress)
}

// stepLosses collects the training loss of every step.
type stepLosses struct{ losses map[int]float64 }

func (l *stepLosses) observe(p contract.FinetuneProgress) {
	if p.Message == "" && p.Eval == nil && p.Step > 0 {
		if l.losses == nil {
			l.losses = map[int]float64{}
		}
		l.losses[p.Step] = p.Loss
	}
}

func (l *stepLosses) mean(from, to int) float64 {
	sum, n := 0.0, 0
	for s := from; s <= to; s++ {
		if v, ok := l.losses[s]; ok {
			sum += v
			n++
		}
	}
	return sum / float64(n)
}

// readWeights reads a checkpoint folder's weights under transformers' names.
func readWeights(t *testing.T, dir string) map[string]checkpoint.Tensor {
	t.Helper()
	cfg, err := checkpoint.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, _, err := checkpoint.ReadWeights(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
