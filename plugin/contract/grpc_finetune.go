package contract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/hashicorp/go-plugin"
	pb "github.com/rerankloop/rerank/plugin/contract/rerankpb"
)

// TrainerPlugin is go-plugin's glue for the trainer entry: Impl is set on
// the plugin side only.
type TrainerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Trainer
}

func (p *TrainerPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterTrainerServer(s, &trainerServer{impl: p.Impl})
	return nil
}

func (p *TrainerPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &TrainerClient{client: pb.NewTrainerClient(c)}, nil
}

// TrainerClient is the host's view of the plugin's trainer.
type TrainerClient struct{ client pb.TrainerClient }

// trainerServer adapts a Trainer to the generated service.
type trainerServer struct {
	pb.UnimplementedTrainerServer
	impl Trainer
}

// FinetuneStopGrace is how long the host waits, once its context ends, for
// the trainer to stop after its current step (or evaluation batch) and
// answer with the result, before it cuts the stream.
var FinetuneStopGrace = 2 * time.Minute

// Finetune streams a fine-tune. Cancelling ctx sends a stop message, so the
// plugin keeps its checkpoints and the result still comes back (with ctx's
// error); a plugin that dies meanwhile gives an error wrapping ErrUnavailable.
func (c *TrainerClient) Finetune(ctx context.Context, req FinetuneRequest, progress func(FinetuneProgress)) (FinetuneResult, error) {
	in := finetuneToPB(req)
	if n := proto.Size(in); n > MaxMessageBytes {
		return FinetuneResult{}, fmt.Errorf("%w: the training data take %d bytes, over the %d-byte limit; send fewer pairs or validation candidates", ErrTooLarge, n, MaxMessageBytes)
	}
	// The stream outlives ctx by up to FinetuneStopGrace so the result of a
	// graceful stop can arrive.
	sctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	stream, err := c.client.Finetune(sctx)
	if err != nil {
		return FinetuneResult{}, fromStatus(err)
	}
	if err := stream.Send(&pb.FinetuneControl{Kind: &pb.FinetuneControl_Start{Start: in}}); err != nil {
		return FinetuneResult{}, fromStatus(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		if stream.Send(&pb.FinetuneControl{Kind: &pb.FinetuneControl_Stop{Stop: &pb.FinetuneStop{}}}) != nil {
			cut()
			return
		}
		select {
		case <-done:
		case <-time.After(FinetuneStopGrace):
			cut()
		}
	}()
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return FinetuneResult{}, errors.New("finetune: the plugin ended the stream without a result")
		}
		if err != nil {
			if ctx.Err() != nil && sctx.Err() != nil {
				return FinetuneResult{}, fmt.Errorf("finetune: no answer within %s of the stop request: %w", FinetuneStopGrace, ctx.Err())
			}
			return FinetuneResult{}, fromStatus(err)
		}
		if p := ev.GetProgress(); p != nil {
			if progress != nil {
				progress(progressFromPB(p))
			}
			continue
		}
		if r := ev.GetResult(); r != nil {
			return resultFromPB(r), ctx.Err()
		}
	}
}

// Finetune runs the plugin's Trainer; a stop message (or the host closing
// its side) cancels the trainer's context, which stops it gracefully.
func (s *trainerServer) Finetune(stream pb.Trainer_FinetuneServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return toStatus(fmt.Errorf("%w: the first Finetune message must be the request", ErrInvalidRequest))
	}
	ctx, stop := context.WithCancel(stream.Context())
	defer stop()
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil || m.GetStop() != nil {
				stop()
				return
			}
		}
	}()
	res, err := s.impl.Finetune(ctx, finetuneFromPB(start), func(p FinetuneProgress) {
		// A failed send means the host is gone; its context ends the training.
		_ = stream.Send(&pb.FinetuneEvent{Kind: &pb.FinetuneEvent_Progress{Progress: progressToPB(p)}})
	})
	if err != nil && !(errors.Is(err, context.Canceled) && stream.Context().Err() == nil) {
		return toStatus(err)
	}
	return stream.Send(&pb.FinetuneEvent{Kind: &pb.FinetuneEvent_Result{Result: resultToPB(res)}})
}

func finetuneToPB(r FinetuneRequest) *pb.FinetuneRequest {
	c := r.Config
	out := &pb.FinetuneRequest{BaseModel: r.BaseModel, OutDir: r.OutDir, Resume: r.Resume, DataSource: r.DataSource, DataReport: r.DataReport,
		Config: &pb.TrainConfig{Epochs: int32(c.Epochs), LearningRate: c.LearningRate, BatchSize: int32(c.BatchSize),
			MaxLength: int32(c.MaxLength), Window: c.Window, EvalSteps: int32(c.EvalSteps), EvalBatchSize: int32(c.EvalBatchSize),
			Patience: int32(c.Patience), Seed: c.Seed, Loss: c.Loss, PosWeight: c.PosWeight, LabelMax: c.LabelMax,
			WarmupRatio: c.WarmupRatio, WeightDecay: c.WeightDecay, MaxGradNorm: c.MaxGradNorm, DivergenceFactor: c.DivergenceFactor},
		Docs: make([]*pb.Document, len(r.Docs)), Train: make([]*pb.TrainPair, len(r.Train)), Validation: make([]*pb.ValQuery, len(r.Validation))}
	for i, d := range r.Docs {
		out.Docs[i] = &pb.Document{Id: d.ID, Text: d.Text}
	}
	for i, p := range r.Train {
		out.Train[i] = &pb.TrainPair{QueryId: p.QueryID, Query: p.Query, Doc: int32(p.Doc), Label: p.Label, Weight: p.Weight}
	}
	for i, q := range r.Validation {
		v := &pb.ValQuery{QueryId: q.QueryID, Query: q.Query, Candidates: make([]int32, len(q.Candidates)), Judged: make(map[string]int32, len(q.Judged)), Scores: q.Scores}
		for j, c := range q.Candidates {
			v.Candidates[j] = int32(c)
		}
		for id, l := range q.Judged {
			v.Judged[id] = int32(l)
		}
		out.Validation[i] = v
	}
	return out
}

func finetuneFromPB(in *pb.FinetuneRequest) FinetuneRequest {
	c := in.GetConfig()
	r := FinetuneRequest{BaseModel: in.BaseModel, OutDir: in.OutDir, Resume: in.Resume, DataSource: in.DataSource, DataReport: in.DataReport,
		Config: TrainConfig{Epochs: int(c.GetEpochs()), LearningRate: c.GetLearningRate(), BatchSize: int(c.GetBatchSize()),
			MaxLength: int(c.GetMaxLength()), Window: c.GetWindow(), EvalSteps: int(c.GetEvalSteps()), EvalBatchSize: int(c.GetEvalBatchSize()),
			Patience: int(c.GetPatience()), Seed: c.GetSeed(), Loss: c.GetLoss(), PosWeight: c.GetPosWeight(), LabelMax: c.GetLabelMax(),
			WarmupRatio: c.GetWarmupRatio(), WeightDecay: c.GetWeightDecay(), MaxGradNorm: c.GetMaxGradNorm(), DivergenceFactor: c.GetDivergenceFactor()},
		Docs: make([]Document, len(in.Docs)), Train: make([]TrainPair, len(in.Train)), Validation: make([]ValQuery, len(in.Validation))}
	for i, d := range in.Docs {
		r.Docs[i] = Document{ID: d.Id, Text: d.Text}
	}
	for i, p := range in.Train {
		r.Train[i] = TrainPair{QueryID: p.QueryId, Query: p.Query, Doc: int(p.Doc), Label: p.Label, Weight: p.Weight}
	}
	for i, q := range in.Validation {
		v := ValQuery{QueryID: q.QueryId, Query: q.Query, Candidates: make([]int, len(q.Candidates)), Judged: make(map[string]int, len(q.Judged)), Scores: q.Scores}
		for j, c := range q.Candidates {
			v.Candidates[j] = int(c)
		}
		for id, l := range q.Judged {
			v.Judged[id] = int(l)
		}
		r.Validation[i] = v
	}
	return r
}

func evalToPB(e EvalPoint) *pb.EvalPoint {
	return &pb.EvalPoint{Step: int32(e.Step), Epoch: e.Epoch, Ndcg10: e.NDCG10, Mrr10: e.MRR10, TrainLoss: e.TrainLoss, Best: e.Best, Seconds: e.Seconds}
}

func evalFromPB(e *pb.EvalPoint) EvalPoint {
	return EvalPoint{Step: int(e.GetStep()), Epoch: e.GetEpoch(), NDCG10: e.GetNdcg10(), MRR10: e.GetMrr10(), TrainLoss: e.GetTrainLoss(), Best: e.GetBest(), Seconds: e.GetSeconds()}
}

func progressToPB(p FinetuneProgress) *pb.FinetuneProgress {
	out := &pb.FinetuneProgress{Step: int32(p.Step), TotalSteps: int32(p.TotalSteps), Epoch: int32(p.Epoch), Loss: p.Loss,
		LearningRate: p.LearningRate, GradNorm: p.GradNorm, EtaSeconds: p.ETA.Seconds(), PairsPerSecond: p.PairsPerSecond, Message: p.Message}
	if p.Eval != nil {
		out.Eval = evalToPB(*p.Eval)
	}
	return out
}

func progressFromPB(p *pb.FinetuneProgress) FinetuneProgress {
	out := FinetuneProgress{Step: int(p.Step), TotalSteps: int(p.TotalSteps), Epoch: int(p.Epoch), Loss: p.Loss, LearningRate: p.LearningRate,
		GradNorm: p.GradNorm, ETA: time.Duration(p.EtaSeconds * float64(time.Second)), PairsPerSecond: p.PairsPerSecond, Message: p.Message}
	if p.Eval != nil {
		e := evalFromPB(p.Eval)
		out.Eval = &e
	}
	return out
}

func resultToPB(r FinetuneResult) *pb.FinetuneResult {
	out := &pb.FinetuneResult{OutDir: r.OutDir, BestCheckpoint: r.BestCheckpoint, LastCheckpoint: r.LastCheckpoint, BestStep: int32(r.BestStep),
		Base: evalToPB(r.Base), Best: evalToPB(r.Best), Stopped: r.Stopped, Message: r.Message, Steps: int32(r.Steps),
		PairsPerSecond: r.PairsPerSecond, TrainSeconds: r.TrainSeconds, ReportPath: r.ReportPath}
	for _, e := range r.Curve {
		out.Curve = append(out.Curve, evalToPB(e))
	}
	return out
}

func resultFromPB(r *pb.FinetuneResult) FinetuneResult {
	out := FinetuneResult{OutDir: r.OutDir, BestCheckpoint: r.BestCheckpoint, LastCheckpoint: r.LastCheckpoint, BestStep: int(r.BestStep),
		Base: evalFromPB(r.Base), Best: evalFromPB(r.Best), Stopped: r.Stopped, Message: r.Message, Steps: int(r.Steps),
		PairsPerSecond: r.PairsPerSecond, TrainSeconds: r.TrainSeconds, ReportPath: r.ReportPath}
	for _, e := range r.Curve {
		out.Curve = append(out.Curve, evalFromPB(e))
	}
	return out
}
