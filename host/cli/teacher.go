package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/distill"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// teacherFlags configure distillation (rerank finetune --teacher).
type teacherFlags struct {
	path  string
	depth int
	opt   distill.Options
}

// teacherModel is the name the teacher is loaded under beside nothing else:
// the fine-tune's plugin serves no model.
const teacherModel = "teacher"

// teacherCandidates are one training query's candidates for the teacher:
// BM25's top depth and the query's positively labelled documents (ranked
// last by BM25 when it did not retrieve them), or without an index the
// query's own pairs.
func teacherCandidates(ctx context.Context, stage runner.FirstStage, depth int, q []pairs.Pair) ([]runner.Candidate, error) {
	var cands []runner.Candidate
	if stage != nil {
		var err error
		if cands, err = stage.Search(ctx, q[0].Query, depth); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	low := 0.0
	for i, c := range cands {
		seen[c.ID] = true
		if i == 0 || c.Score < low {
			low = c.Score
		}
	}
	for _, p := range q {
		if !seen[p.DocID] && (stage == nil || p.Label > 0) {
			seen[p.DocID] = true
			cands = append(cands, runner.Candidate{ID: p.DocID, Text: p.Text, Score: low})
		}
	}
	return cands, nil
}

// distil replaces data's training pairs by soft targets from the teacher's
// scores (fused with BM25 when a fusion.json lies beside it) over each
// training query's candidates. Every check runs before the teacher scores
// anything, and the plugin serves no model, so a failure touches nothing.
func distil(ctx context.Context, tf teacherFlags, data *trainset.Result, idx *search.Index, client *pluginclient.Client, stdout io.Writer) error {
	cfg, err := checkpoint.ReadConfig(tf.path)
	if err != nil {
		return fmt.Errorf("--teacher: %w", err)
	}
	if cfg.Kind == checkpoint.Encoder {
		return fmt.Errorf("--teacher %s is a plain encoder without a trained head: give a cross-encoder or a bi-encoder (sentence-transformers folder)", tf.path)
	}
	fuse, fused, err := fusion.Read(tf.path)
	if err != nil {
		return fmt.Errorf("--teacher: %w", err)
	}
	var stage runner.FirstStage
	if idx != nil {
		stage = search.Stage{Index: idx}
	} else if fused {
		return fmt.Errorf("--teacher %s is fused with BM25 (fusion.json), which needs a BM25 index: give --index or --corpus", tf.path)
	}
	if tf.depth < 1 {
		return fmt.Errorf("--teacher-depth must be at least 1, got %d", tf.depth)
	}
	hash, err := checkpoint.Hash(tf.path)
	if err != nil {
		return fmt.Errorf("--teacher: %w", err)
	}

	var order []string
	byQuery := map[string][]pairs.Pair{}
	for _, p := range data.Train {
		k := pairs.QueryKey(p)
		if byQuery[k] == nil {
			order = append(order, k)
		}
		byQuery[k] = append(byQuery[k], p)
	}
	if _, err := client.Load(ctx, contract.LoadRequest{Path: tf.path, Version: teacherModel, CheckpointHash: hash}); err != nil {
		return fmt.Errorf("--teacher %s cannot score: %w", tf.path, err)
	}
	defer client.Unload(context.WithoutCancel(ctx), teacherModel)
	scorer := pluginclient.Scorer{Reranker: client, Model: teacherModel}
	rep := &distill.Report{Teacher: fmt.Sprintf("%s (%s)", tf.path, cfg.Kind), Depth: tf.depth}
	if fused {
		rep.Fused = fuse.String()
	}
	fmt.Fprintf(stdout, "the teacher scores %d training queries' candidates ...\n", len(order))
	qs := make([]distill.Query, 0, len(order))
	for i, k := range order {
		if i > 0 && i%100 == 0 {
			fmt.Fprintf(stdout, "the teacher scored %d of %d queries\n", i, len(order))
		}
		ps := byQuery[k]
		cands, err := teacherCandidates(ctx, stage, tf.depth, ps)
		if err != nil {
			return err
		}
		scores, err := scorer.Score(ctx, ps[0].Query, cands)
		if err != nil {
			return fmt.Errorf("--teacher %s could not score query %q: %w", tf.path, ps[0].Query, err)
		}
		teacher := make([]float64, len(scores))
		first := make([]float64, len(cands))
		for i := range scores {
			teacher[i], first[i] = float64(scores[i]), cands[i].Score
		}
		if fused {
			teacher = fuse.Fuse(first, teacher)
		}
		labels := map[string]float64{}
		for _, p := range ps {
			labels[p.DocID] = math.Max(labels[p.DocID], p.Label)
		}
		q := distill.Query{ID: k, Text: ps[0].Query, Teacher: teacher}
		for _, c := range cands {
			q.Docs = append(q.Docs, distill.Doc{ID: c.ID, Text: c.Text, Label: labels[c.ID]})
		}
		qs = append(qs, q)
	}
	train, err := distill.Pairs(qs, tf.opt, rep)
	if err != nil {
		return err
	}
	return data.Distil(train, rep)
}

// checkTeacherLoss settles the loss of a distillation: listwise, whose
// target is proportional to the soft labels.
func checkTeacherLoss(t *contract.TrainConfig) error {
	if t.Loss != "" && t.Loss != contract.LossListwise {
		return errors.New("--teacher trains with the listwise loss (softmax over each query's candidates against the teacher's distribution): drop --loss " + t.Loss)
	}
	t.Loss, t.LabelMax = contract.LossListwise, 1
	return nil
}
