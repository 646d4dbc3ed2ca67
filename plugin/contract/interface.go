// Package contract is everything that crosses the process boundary between the
// host (bin/rerank) and the model process (bin/rerank-plugin): the gRPC
// service (reranker.proto), the Go interface both sides program against, and
// the go-plugin handshake. Nothing else is shared between the two binaries.
package contract

import (
	"context"
	"errors"
)

// Document is one candidate to score.
type Document struct {
	ID   string
	Text string
}

// RerankRequest asks for scores of Documents against Query.
type RerankRequest struct {
	Query     string
	Documents []Document
	// TopN limits Ranking to the best N (0: all). Scores always has every document.
	TopN int
	// Sigmoid maps raw logits to (0, 1).
	Sigmoid bool
	// Model names a loaded model version; empty means the serving one.
	Model string
}

// Ranked is one entry of a ranking: the input index of a document and its score.
type Ranked struct {
	Index int
	ID    string
	Score float32
}

// RerankResponse holds one score per input document, in input order, and the
// documents sorted by score (best first, ties kept in input order).
type RerankResponse struct {
	Scores  []float32
	Ranking []Ranked
	// ModelVersion is the version that computed every score of this response.
	ModelVersion string
}

// LoadRequest loads a Hugging Face checkpoint folder into the plugin.
type LoadRequest struct {
	Path string
	// Version names the loaded model; empty means "derive from the checkpoint hash".
	Version string
	// Serve makes it the serving model once loaded and warmed.
	Serve bool
	// CheckpointHash, if set, is the sha256 of model.safetensors the caller
	// expects (the registry's): other weights are refused, never served.
	CheckpointHash string
}

// ModelInfo describes a loaded model.
type ModelInfo struct {
	Version        string
	ModelID        string // architecture and size, e.g. "bert L6 H384"
	Path           string
	CheckpointHash string // sha256 of model.safetensors
	Device         string // "cpu" or "cuda:0"
	MaxLength      int
	Serving        bool
	Kind           string // "cross-encoder" or "bi-encoder"
	// EmbeddingCache is a bi-encoder's file of document embeddings, kept
	// across restarts; it goes when its model version is deleted.
	EmbeddingCache string
}

// Reranker is the interface the host programs against; the plugin implements it.
type Reranker interface {
	Rerank(ctx context.Context, req RerankRequest) (RerankResponse, error)
	Load(ctx context.Context, req LoadRequest) (ModelInfo, error)
	// Unload frees a loaded model other than the serving one.
	Unload(ctx context.Context, version string) error
	// Info describes the serving model and every other loaded one.
	Info(ctx context.Context) ([]ModelInfo, error)
	Health(ctx context.Context) error
}

// ErrUnavailable is returned (wrapped) by the host-side client while the
// plugin process is down or restarting, so callers can fall back to
// first-stage order at once.
var ErrUnavailable = errors.New("reranker unavailable")
