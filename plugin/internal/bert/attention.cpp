// Attention at inference on CPU, fused: for each (sequence, head), eight
// query rows at a time, the scores over the sequence's real keys, their
// softmax and the product with the values, all in cache. Unfused, the [heads,
// T, T] scores go out to memory and back three times (two products and a
// softmax between them), and at length 512 that made attention a third of the
// forward pass on 2 cores. Keys past a sequence's length are skipped rather
// than masked. Needs AVX-512F; elsewhere (CUDA, autocast, training's
// dropout, gradients) attention is libtorch's scaled_dot_product_attention.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <immintrin.h>

#include "guarded.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {
constexpr int block_rows = 8; // query rows whose scores are computed together
constexpr int max_vectors = 8; // head sizes up to 128 floats, 16 per vector

// The kernels take raw pointers and run only where the CPU has AVX-512F.
#pragma GCC push_options
#pragma GCC target("avx512f")

// exp(x) for x <= 0, as Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-7
// polynomial for exp(r) (relative error about 1e-7), then scaled by 2^n.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.f), x); // exp(-104) rounds to 0 in float32; a NaN stays NaN
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

// acc[i][c] = Σ_k a[i][k] b[k][16c..16c+15] for the rows i of a (k
// contiguous) and cols vectors c of b (rows at stride ldb): the products of
// both steps of attention, one broadcast of a against cols vectors of b at a
// time.
template <int rows, int cols>
inline __attribute__((always_inline)) void products(const float *const a[rows], const float *b, int64_t ldb,
                                                    int64_t K, __m512 (&acc)[rows][cols]) {
  #pragma GCC unroll 8
  for (int i = 0; i < rows; i++)
    #pragma GCC unroll 8
    for (int c = 0; c < cols; c++)
      acc[i][c] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    __m512 bk[cols];
    #pragma GCC unroll 8
    for (int c = 0; c < cols; c++)
      bk[c] = _mm512_loadu_ps(b + k * ldb + 16 * c);
    #pragma GCC unroll 8
    for (int i = 0; i < rows; i++) {
      const __m512 ai = _mm512_set1_ps(a[i][k]);
      #pragma GCC unroll 8
      for (int c = 0; c < cols; c++)
        acc[i][c] = _mm512_fmadd_ps(ai, bk[c], acc[i][c]);
    }
  }
}

// s[i][16c..16c+15] = q[i] · kt[:, 16c..16c+15] for the block's rows i and
// cols vectors c: kt is the head's keys transposed, [dh][ldk].
template <int cols>
void scores_tile(const float *const q[block_rows], const float *kt, int64_t ldk, int64_t dh, float *s, int64_t lds) {
  __m512 acc[block_rows][cols];
  products<block_rows, cols>(q, kt, ldk, dh, acc);
  #pragma GCC unroll 8
  for (int i = 0; i < block_rows; i++)
    #pragma GCC unroll 8
    for (int c = 0; c < cols; c++)
      _mm512_storeu_ps(s + i * lds + 16 * c, acc[i][c]);
}

// Row i of s (n scores) becomes exp(scale (s - max)); returns their sum.
float softmax_numerators(float *s, int64_t n, float scale) {
  const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1);
  const int64_t full = n - n % 16;
  __m512 m = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < full; j += 16)
    m = _mm512_max_ps(m, _mm512_loadu_ps(s + j));
  m = _mm512_mask_max_ps(m, tail, m, _mm512_maskz_loadu_ps(tail, s + full));
  // (s - max) scale, not s scale - max scale: with scores as large as a
  // diverging model's, the rounding of max scale could make it positive.
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(m)), sc = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < full; j += 16) {
    const __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j), max), sc));
    _mm512_storeu_ps(s + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (tail) {
    const __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + full), max), sc));
    _mm512_mask_storeu_ps(s + full, tail, e);
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

// out[i][:dh] = (p[i][:n] · v) / sum[i] for rows i of a tile; v is the
// head's values packed as [n][16 * vectors], zero past dh.
template <int rows, int vectors>
void values_tile(const float *p, int64_t ldp, const float *v, int64_t n, const float *sum, float *const out[],
                 __mmask16 last) {
  const float *pi[rows];
  for (int i = 0; i < rows; i++)
    pi[i] = p + i * ldp;
  __m512 acc[rows][vectors];
  products<rows, vectors>(pi, v, vectors * 16, n, acc);
  #pragma GCC unroll 8
  for (int i = 0; i < rows; i++) {
    const __m512 inv = _mm512_set1_ps(1.f / sum[i]);
    #pragma GCC unroll 8
    for (int c = 0; c < vectors; c++)
      _mm512_mask_storeu_ps(out[i] + 16 * c, c == vectors - 1 ? last : (__mmask16)0xffff,
                            _mm512_mul_ps(acc[i][c], inv));
  }
}

// The block's rows through the values, in tiles that keep every accumulator
// in one of the 32 vector registers.
template <int vectors>
void values_block(const float *p, int64_t ldp, const float *v, int64_t n, const float *sum,
                  float *const out[block_rows], __mmask16 last) {
  constexpr int rows = vectors <= 3 ? 8 : vectors == 4 ? 4 : 2;
  for (int i = 0; i < block_rows; i += rows)
    values_tile<rows, vectors>(p + i * ldp, ldp, v, n, sum + i, out + i, last);
}

using values_fn = void (*)(const float *, int64_t, const float *, int64_t, const float *, float *const[block_rows],
                           __mmask16);
constexpr values_fn values_blocks[max_vectors] = {values_block<1>, values_block<2>, values_block<3>,
                                                  values_block<4>, values_block<5>, values_block<6>,
                                                  values_block<7>, values_block<8>};

// A head's rows of q, k or v: row t is dh floats at p + t ld.
struct Rows {
  const float *p;
  int64_t ld;
  const float *row(int64_t t) const { return p + t * ld; }
};

// One head of one sequence: T queries, n real keys; out rows at stride ldo.
struct Head {
  Rows q, k, v;
  float *out;
  int64_t ldo;
  int64_t T, n, dh;
};

void head_attention(const Head &h, float scale, std::vector<float> &buf) {
  // cols: the keys rounded up to whole vectors; the row stride ld of the
  // transposed keys and of the scores is one vector more, so that rows 2^k
  // bytes apart do not share a cache set.
  const int64_t vectors = (h.dh + 15) / 16, width = vectors * 16, cols = (h.n + 15) / 16 * 16, ld = cols + 16;
  buf.assign(h.dh * ld + h.n * width + block_rows * ld + width, 0.f);
  // spare: where a partial block's missing rows go.
  float *kt = buf.data(), *v = kt + h.dh * ld, *s = v + h.n * width, *spare = s + block_rows * ld;
  for (int64_t t0 = 0; t0 < h.n; t0 += 16) // 16 keys at a time: their rows stay in L1
    for (int64_t d = 0; d < h.dh; d++)
      for (int64_t t = t0; t < std::min(t0 + 16, h.n); t++)
        kt[d * ld + t] = h.k.row(t)[d];
  for (int64_t t = 0; t < h.n; t++)
    std::copy_n(h.v.row(t), h.dh, v + t * width);
  const __mmask16 last = h.dh % 16 == 0 ? 0xffff : (__mmask16)((1u << (h.dh % 16)) - 1);
  float sum[block_rows];
  for (int64_t i0 = 0; i0 < h.T; i0 += block_rows) {
    const float *q[block_rows];
    float *out[block_rows];
    for (int i = 0; i < block_rows; i++) {
      const bool real = i0 + i < h.T;
      q[i] = h.q.row(real ? i0 + i : h.T - 1);
      out[i] = real ? h.out + (i0 + i) * h.ldo : spare;
    }
    int64_t c = 0;
    for (; c + 3 * 16 <= cols; c += 3 * 16)
      scores_tile<3>(q, kt + c, ld, h.dh, s + c, ld);
    if (cols - c == 32)
      scores_tile<2>(q, kt + c, ld, h.dh, s + c, ld);
    else if (cols - c == 16)
      scores_tile<1>(q, kt + c, ld, h.dh, s + c, ld);
    for (int i = 0; i < block_rows; i++)
      sum[i] = softmax_numerators(s + i * ld, h.n, scale);
    values_blocks[vectors - 1](s, ld, v, h.n, sum, out, last);
  }
}
#pragma GCC pop_options

// How many leading keys of each sequence the [B, 1, 1, T] boolean mask lets
// attend (all T without a mask); empty for any other mask (another shape or
// type, or a row that is not a prefix of trues), which this kernel does not
// take.
std::vector<int64_t> key_lengths(const at::Tensor &mask, int64_t B, int64_t T) {
  std::vector<int64_t> n(B, T);
  if (!mask.defined()) {
    return n;
  }
  if (mask.scalar_type() != at::kBool || mask.numel() != B * T) {
    return {};
  }
  auto m = mask.reshape({B, T}).contiguous();
  const bool *p = m.data_ptr<bool>();
  for (int64_t b = 0; b < B; b++) {
    int64_t len = 0;
    while (len < T && p[b * T + len])
      len++;
    for (int64_t j = len; j < T; j++)
      if (p[b * T + j])
        return {};
    if (len == 0)
      return {};
    n[b] = len;
  }
  return n;
}

bool fused_ok() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

// softmax(q kᵀ / sqrt(dh) + mask) v for q, k, v [B, nh, T, dh]; undefined
// where the kernel does not apply. The result is a [B, nh, T, dh] view of
// [B, T, nh, dh] memory, as libtorch's fused kernel returns it.
at::Tensor fused_attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const at::Tensor &mask) {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), dh = q.size(3);
  bool ok = fused_ok() && q.device().is_cpu() && !at::autocast::is_autocast_enabled(at::kCPU) && dh <= 16 * max_vectors;
  for (const auto *x : {&q, &k, &v}) {
    ok = ok && x->scalar_type() == at::kFloat && x->sizes() == q.sizes();
  }
  const auto n = ok ? key_lengths(mask, B, T) : std::vector<int64_t>();
  if (n.empty()) {
    return at::Tensor();
  }
  // The kernel reads each row's dh floats in place (the model's q, k and v
  // are views of one projection): only another layout is copied.
  const auto rowwise = [](const at::Tensor &x) { return x.stride(3) == 1 ? x : x.contiguous(); };
  const at::Tensor qr = rowwise(q), kr = rowwise(k), vr = rowwise(v);
  const auto rows = [](const at::Tensor &x, int64_t b, int64_t h) {
    return Rows{x.const_data_ptr<float>() + b * x.stride(0) + h * x.stride(1), x.stride(2)};
  };
  auto out = at::empty({B, T, nh, dh}, q.options());
  float *op = out.data_ptr<float>();
  const float scale = 1.0 / std::sqrt(double(dh));
  at::parallel_for(0, B * nh, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf;
    for (int64_t i = begin; i < end; i++) {
      const int64_t b = i / nh, h = i % nh;
      head_attention(Head{rows(qr, b, h), rows(kr, b, h), rows(vr, b, h), op + (b * T * nh + h) * dh,
                          nh * dh, T, n[b], dh},
                     scale, buf);
    }
  });
  return out.transpose(1, 2);
}

at::Tensor attention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const at::Tensor &mask,
                     double dropout) {
  bool inference = dropout == 0 && !(at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() ||
                                                                     v.requires_grad()));
  if (inference) {
    if (auto out = fused_attention(q, k, v, mask); out.defined()) {
      return out;
    }
  }
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt,
                                          dropout);
}
} // namespace

extern "C" {
// *out = softmax(q kᵀ / sqrt(dh) + mask) v with dropout on the probabilities;
// mask ([B, 1, 1, T] boolean, true: attend) may be null.
int rerank_attention(void *q, void *k, void *v, void *mask, double dropout, void **out) {
  return guarded([&] {
    *out = new at::Tensor(attention(at_(q), at_(k), at_(v), optional_(mask), dropout));
  });
}

const char *rerank_attention_error() { return last_error.c_str(); }

// Whether attention at inference on CPU runs the fused kernel (AVX-512F).
int rerank_attention_fused() { return fused_ok(); }
}
