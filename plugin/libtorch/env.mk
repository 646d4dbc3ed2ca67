# Build and run environment for the packages that use gotch (libtorch via cgo).
# The one place these flags live: the Makefile includes this file, and scripts
# read the same values with `eval "$(make -s env)"`.
#
# Default: the libtorch of PyPI's torch 2.11.0 wheel, which `make setup`
# unpacks into .build (plugin/libtorch/setup.sh). On a machine without an
# NVIDIA driver only its CPU libraries are kept, with built stand-ins for the
# two CUDA runtime libraries libtorch_cpu loads; with one (nvidia-smi lists a
# GPU), pip installs the wheel with its CUDA wheels.
# Another libtorch (a PyTorch installation's torch/ folder, e.g. on the GPU
# machine, which reaches no registry):
#   make build LIBTORCH=/path/to/site-packages/torch TORCH_VARIANT=2.11
# Keep these values stable: changing any CGO_* value recompiles gotch's libtch (~3 min).

LIBTORCH_MK_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
REPO_ROOT := $(abspath $(LIBTORCH_MK_DIR)/../..)
BUILD_DIR := $(REPO_ROOT)/.build

TORCH_WHEEL := 2.11.0
TORCH_DEVICE ?= $(if $(shell nvidia-smi -L 2>/dev/null),cuda,cpu)
# Where setup.sh unpacks the wheel (its torch/ folder keeps the wheel's layout).
PYPI_TORCH := $(BUILD_DIR)/pypi-torch-$(TORCH_WHEEL)-$(TORCH_DEVICE)/torch
LIBTORCH ?= $(PYPI_TORCH)
TORCH_VARIANT ?= 2.11
COMPAT_HEADER := $(LIBTORCH_MK_DIR)/compat-$(TORCH_VARIANT).h

TORCH_INCLUDE := $(LIBTORCH)/include
ifneq ($(wildcard $(LIBTORCH)/lib/libtorch_cuda.so),)
# --no-as-needed: the Go binary calls nothing in libtorch_cuda directly, so
# without it the linker drops the library and CUDA reports unavailable.
TORCH_LDFLAGS := -L$(LIBTORCH)/lib -Wl,-rpath,$(LIBTORCH)/lib -Wl,--no-as-needed
TORCH_LABEL := libtorch $(TORCH_VARIANT) (CUDA)
else
# A CPU libtorch: libtorch_cpu and libc10; gotch's other libraries are stubs.
TORCH_LDFLAGS := -L$(LIBTORCH)/lib -Wl,-rpath,$(LIBTORCH)/lib
TORCH_LABEL := libtorch $(TORCH_VARIANT) (CPU)
endif
# Which libraries need a stub depends on the libtorch: one folder per variant.
CUDA_STUBS := $(BUILD_DIR)/cuda-stubs-$(notdir $(patsubst %/torch,%,$(LIBTORCH)))

# gotch's own #cgo flags add -std=c++17 and its libraries (-ltorch -lc10 -ltorch_cpu
# and the CUDA ones, which the stub folder satisfies where they are absent).
# Go's build cache keys on flag values, not on headers outside the package: the
# id (a hash of the compat header and libtorch's version.h) makes a regenerated
# header or another libtorch rebuild libtch instead of reusing a stale one.
COMPAT_ID := $(shell cat $(COMPAT_HEADER) $(TORCH_INCLUDE)/torch/csrc/api/include/torch/version.h 2>/dev/null | sha256sum | cut -c1-12)
export CGO_CXXFLAGS := -O2 -std=c++17 -I$(TORCH_INCLUDE) -I$(TORCH_INCLUDE)/torch/csrc/api/include -include $(COMPAT_HEADER) -DRERANK_COMPAT_ID=$(COMPAT_ID)
export CGO_LDFLAGS := $(strip $(TORCH_LDFLAGS) -L$(CUDA_STUBS))
# gotch's init() exits if it cannot create its cache folder.
export GOTCH_CACHE := $(BUILD_DIR)/gotch-cache
# Idle OpenMP threads sleep instead of spinning against OpenBLAS's threads, and
# malloc uses huge pages: each is a 2-6x speed difference on these machines
# (see plugin/libtorch/README.md).
export OMP_WAIT_POLICY := PASSIVE
export GLIBC_TUNABLES := glibc.malloc.hugetlb=1
# setup.sh and the compat-header target read these too.
export LIBTORCH PYPI_TORCH TORCH_WHEEL TORCH_DEVICE TORCH_VARIANT TORCH_INCLUDE TORCH_LABEL COMPAT_HEADER CUDA_STUBS BUILD_DIR

GOTCH_ENV_VARS := CGO_CXXFLAGS CGO_LDFLAGS GOTCH_CACHE OMP_WAIT_POLICY GLIBC_TUNABLES \
	LIBTORCH PYPI_TORCH TORCH_WHEEL TORCH_DEVICE TORCH_VARIANT TORCH_INCLUDE TORCH_LABEL COMPAT_HEADER CUDA_STUBS BUILD_DIR
