package contract

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/rerankloop/rerank/plugin/contract/rerankpb"
)

// ProtocolVersion is the contract's version; bump it on any incompatible change
// to reranker.proto so an old host refuses a new plugin (and vice versa).
// 2: Finetune moved from the Reranker service to its own Trainer entry.
const ProtocolVersion = 2

// Keys of the plugin set: the reranker, and the trainer beside it.
const (
	PluginName        = "reranker"
	TrainerPluginName = "trainer"
)

// MaxMessageBytes bounds one gRPC message either way (gRPC's default is 4 MiB,
// too small for 100 long documents). Larger requests fail before they are sent.
const MaxMessageBytes = 64 << 20

// Handshake keeps the plugin binary from being run by hand or by another host.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "RERANK_PLUGIN",
	MagicCookieValue: "7f3c1e52-cross-encoder",
}

// VersionedPlugins is what host and plugin both hand to go-plugin: the
// plugin its implementations, the host nil for both.
func VersionedPlugins(r Reranker, t Trainer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: r}, TrainerPluginName: &TrainerPlugin{Impl: t}},
	}
}

// Errors a Reranker returns; they survive the process boundary as gRPC codes.
var (
	ErrInvalidRequest = errors.New("invalid rerank request")
	ErrNoModel        = errors.New("no such model loaded")
	ErrTooLarge       = errors.New("request too large")
	// ErrOverloaded: the model has more work queued than its budget; retry
	// later (a search answers in first-stage order meanwhile).
	ErrOverloaded = errors.New("reranker overloaded")
)

// GRPCPlugin is go-plugin's glue: Impl is set on the plugin side only.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Reranker
}

func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterRerankerServer(s, &grpcServer{impl: p.Impl})
	return nil
}

func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &GRPCClient{client: pb.NewRerankerClient(c)}, nil
}

// ServerOptions raises gRPC's message limits on the plugin side.
func ServerOptions(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))...)
}

// DialOptions raises gRPC's message limits on the host side.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes))}
}

// GRPCClient is the host's view of the plugin.
type GRPCClient struct{ client pb.RerankerClient }

func (c *GRPCClient) Rerank(ctx context.Context, req RerankRequest) (RerankResponse, error) {
	in := &pb.RerankRequest{Query: req.Query, TopN: int32(req.TopN), Sigmoid: req.Sigmoid, Model: req.Model}
	in.Documents = make([]*pb.Document, len(req.Documents))
	for i, d := range req.Documents {
		in.Documents[i] = &pb.Document{Id: d.ID, Text: d.Text}
	}
	if n := proto.Size(in); n > MaxMessageBytes {
		return RerankResponse{}, fmt.Errorf("%w: %d bytes over the %d-byte limit; send fewer or shorter documents", ErrTooLarge, n, MaxMessageBytes)
	}
	out, err := c.client.Rerank(ctx, in)
	if err != nil {
		return RerankResponse{}, fromStatus(err)
	}
	resp := RerankResponse{Scores: out.Scores, ModelVersion: out.ModelVersion, Ranking: make([]Ranked, len(out.Ranking))}
	for i, r := range out.Ranking {
		resp.Ranking[i] = Ranked{Index: int(r.Index), ID: r.Id, Score: r.Score}
	}
	return resp, nil
}

func (c *GRPCClient) Load(ctx context.Context, req LoadRequest) (ModelInfo, error) {
	out, err := c.client.Load(ctx, &pb.LoadRequest{Path: req.Path, Version: req.Version, Serve: req.Serve, CheckpointHash: req.CheckpointHash})
	if err != nil {
		return ModelInfo{}, fromStatus(err)
	}
	return infoFromPB(out), nil
}

func (c *GRPCClient) Unload(ctx context.Context, version string) error {
	_, err := c.client.Unload(ctx, &pb.UnloadRequest{Version: version})
	return fromStatus(err)
}

func (c *GRPCClient) Info(ctx context.Context) ([]ModelInfo, error) {
	out, err := c.client.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	infos := make([]ModelInfo, len(out.Models))
	for i, m := range out.Models {
		infos[i] = infoFromPB(m)
	}
	return infos, nil
}

func (c *GRPCClient) Health(ctx context.Context) error {
	_, err := c.client.Health(ctx, &pb.HealthRequest{})
	return fromStatus(err)
}

// grpcServer adapts a Reranker to the generated service.
type grpcServer struct {
	pb.UnimplementedRerankerServer
	impl Reranker
}

func (s *grpcServer) Rerank(ctx context.Context, in *pb.RerankRequest) (*pb.RerankResponse, error) {
	req := RerankRequest{Query: in.Query, TopN: int(in.TopN), Sigmoid: in.Sigmoid, Model: in.Model,
		Documents: make([]Document, len(in.Documents))}
	for i, d := range in.Documents {
		req.Documents[i] = Document{ID: d.Id, Text: d.Text}
	}
	resp, err := s.impl.Rerank(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.RerankResponse{Scores: resp.Scores, ModelVersion: resp.ModelVersion, Ranking: make([]*pb.Ranked, len(resp.Ranking))}
	for i, r := range resp.Ranking {
		out.Ranking[i] = &pb.Ranked{Index: int32(r.Index), Id: r.ID, Score: r.Score}
	}
	return out, nil
}

func (s *grpcServer) Load(ctx context.Context, in *pb.LoadRequest) (*pb.ModelInfo, error) {
	info, err := s.impl.Load(ctx, LoadRequest{Path: in.Path, Version: in.Version, Serve: in.Serve, CheckpointHash: in.CheckpointHash})
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToPB(info), nil
}

func (s *grpcServer) Unload(ctx context.Context, in *pb.UnloadRequest) (*pb.UnloadResponse, error) {
	if err := s.impl.Unload(ctx, in.Version); err != nil {
		return nil, toStatus(err)
	}
	return &pb.UnloadResponse{}, nil
}

func (s *grpcServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	infos, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.InfoResponse{Models: make([]*pb.ModelInfo, len(infos))}
	for i, m := range infos {
		out.Models[i] = infoToPB(m)
	}
	return out, nil
}

func (s *grpcServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	if err := s.impl.Health(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pb.HealthResponse{Status: "ok"}, nil
}

func infoToPB(m ModelInfo) *pb.ModelInfo {
	return &pb.ModelInfo{Version: m.Version, ModelId: m.ModelID, Path: m.Path, CheckpointHash: m.CheckpointHash,
		Device: m.Device, MaxLength: int32(m.MaxLength), Serving: m.Serving, Kind: m.Kind, EmbeddingCache: m.EmbeddingCache}
}

func infoFromPB(m *pb.ModelInfo) ModelInfo {
	return ModelInfo{Version: m.Version, ModelID: m.ModelId, Path: m.Path, CheckpointHash: m.CheckpointHash,
		Device: m.Device, MaxLength: int(m.MaxLength), Serving: m.Serving, Kind: m.Kind, EmbeddingCache: m.EmbeddingCache}
}

// statusCodes maps the contract's errors to gRPC codes and back.
var statusCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidRequest, codes.InvalidArgument},
	{ErrNoModel, codes.NotFound},
	{ErrTooLarge, codes.ResourceExhausted},
	{ErrBusy, codes.FailedPrecondition},
	{ErrOverloaded, codes.Aborted},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

func toStatus(err error) error {
	for _, m := range statusCodes {
		if errors.Is(err, m.err) {
			return status.Error(m.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus turns a gRPC error back into a contract error; a broken
// connection becomes ErrUnavailable so callers fall back at once.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() == codes.Unavailable {
		return fmt.Errorf("%w: %s", ErrUnavailable, st.Message())
	}
	for _, m := range statusCodes {
		if st.Code() == m.code {
			// The message already carries the sentinel's text from the plugin side.
			return &remoteError{sentinel: m.err, msg: st.Message()}
		}
	}
	return errors.New(st.Message())
}

type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
