# Build, test and run the reranker. First time on a machine: `make setup`.
# The cgo flags and runtime environment for gotch (libtorch) come from
# plugin/libtorch/env.mk and are exported to every recipe below.
include plugin/libtorch/env.mk

GO ?= go
BIN := bin
# Extra `go test` flags, e.g. make test TESTFLAGS='-run TestEncoder -v'.
TESTFLAGS ?=
PKGS ?= ./...
BENCHFLAGS ?= -run='^$$' -bench=. -benchmem

.PHONY: all setup build test demo bench bench-model clean env compat-header check-setup proto opensearch-fetch test-opensearch bench-opensearch

all: build

setup:
	bash plugin/libtorch/setup.sh

# bin/rerank is pure Go; only the plugin links libtorch. The host checks the
# plugin binary against bin/rerank-plugin.sha256 before starting it.
build: check-setup
	CGO_ENABLED=0 $(GO) build -o $(BIN)/rerank ./host/cmd/rerank
	$(GO) build -o $(BIN)/rerank-plugin ./plugin/cmd/rerank-plugin
	sha256sum $(BIN)/rerank-plugin | cut -d' ' -f1 > $(BIN)/rerank-plugin.sha256

test: check-setup
	@minilm=$${RERANK_MINILM_DIR:-$$(plugin/libtorch/find-minilm.sh)}; \
	if [ -n "$$minilm" ]; then export RERANK_MINILM_DIR="$$minilm"; echo "RERANK_MINILM_DIR=$$minilm"; fi; \
	echo "$(GO) test -timeout 30m $(TESTFLAGS) $(PKGS)"; \
	$(GO) test -timeout 30m $(TESTFLAGS) $(PKGS)

# OpenSearch: the pinned node (host/opensearch/node, ~430 MB once, cached in
# ~/.cache/rerank-opensearch), the end-to-end test against it (run by make test
# too, skipped without Java or the artifacts; verbose here, for its figures),
# and the load comparison of OpenSearch alone and with our rerank stage.
opensearch-fetch:
	host/opensearch/node/fetch.sh

test-opensearch: check-setup
	$(GO) test -count=1 -v -timeout 20m -run 'TestOpenSearchRerankStage' ./host/cli

bench-opensearch: check-setup
	RERANK_OPENSEARCH_LOAD=1 $(GO) test -count=1 -v -timeout 30m -run 'TestOpenSearchLoad' ./host/cli

# The closed loop end to end on testdata/scifact (see rerank demo --help),
# e.g. make demo DEMOFLAGS='--dir demo-data --serve'.
DEMOFLAGS ?=
demo: build
	$(BIN)/rerank demo $(DEMOFLAGS)

bench: check-setup
	$(GO) test $(BENCHFLAGS) $(PKGS)

# The model's speed in one run, one table: our engine and sentence-transformers
# (CrossEncoder.predict, SentenceTransformer.encode) on the same checkpoint,
# pairs, threads and precision; pairs/s of both, Go/Python, GFLOP/s against the
# matmul peak, peak memory, rerank latency (plugin/testdata/reference/bench-model.sh).
# PYREF is a Python with torch, transformers and sentence-transformers.
PYREF ?= python3
bench-model: check-setup
	PYREF=$(PYREF) bash plugin/testdata/reference/bench-model.sh

clean:
	rm -rf $(BIN) $(BUILD_DIR)

# Shell exports of the build environment, for scripts: eval "$(make -s env)".
env:
	@$(foreach v,$(GOTCH_ENV_VARS),echo "export $(v)='$($(v))'";)

# Regenerate the compat header for the libtorch selected in env.mk
# (e.g. make compat-header LIBTORCH=/path/to/torch TORCH_VARIANT=2.11), checked
# against the headers of torch 2.1.0, which gotch v0.9.1 was generated from.
REF_TORCH := $(BUILD_DIR)/torch-2.1.0
compat-header: $(REF_TORCH)/torch/include
	$(GO) run ./plugin/libtorch/gencompat -out $(COMPAT_HEADER) -label "$(TORCH_LABEL)" \
		-ref $(REF_TORCH)/torch/include -I $(TORCH_INCLUDE) -I $(TORCH_INCLUDE)/torch/csrc/api/include

$(REF_TORCH)/torch/include:
	bash plugin/libtorch/fetch-torch-headers.sh 2.1.0 $(REF_TORCH)

check-setup:
	@test -d $(CUDA_STUBS) || { echo "$(CUDA_STUBS) missing: run 'make setup' first" >&2; exit 1; }

# Regenerate plugin/contract/rerankpb from reranker.proto (protoc, protoc-gen-go, protoc-gen-go-grpc).
proto:
	cd plugin/contract/rerankpb && PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative reranker.proto
