// AMX-BF16 attention kernels (compiled with -mamx-tile -mamx-bf16; reached only when cpu_supports(kAmx), which
// also obtained the XTILEDATA permission through arch_prctl). TDPBF16PS: C[16x16 f32] += A[16 x 32 bf16] . B,
// B in the dword-pair layout B[j][n] = (X[2j][n], X[2j+1][n]), which is exactly what attn_pack.h produces:
//   qk: A = 16 query rows, B = pack_k_pairs(K) (K^T in pairs), C = 16 x 16 scores;
//   pv: A = 16 rows of P,  B = pack_v_pairs(V),               C = 16 x 16 outputs (loaded from O, added to).
// A tiles are copied into zero-padded scratch, and the packed B rows past the data are zero, so padding
// contributes exact zeros. One A tile feeds 2 (qk) or 4 (pv) C tiles; full C tiles are loaded from and stored to
// S / O in place, partial ones go through scratch. With fewer than 16 query rows a tile would be mostly padding:
// those calls use the AVX-512 BF16 kernels (every AMX CPU has AVX-512 BF16); the pair-layout kernels below keep
// tiles down to kMinRowsForPackedTiles rows.
// qk_kpacked / pv_vpacked load B straight from the cache's pair layouts (row stride = the cache's). Only the k step
// that would reach past the data (pair rows >= d / 2 for qk; pair rows >= nt / 2, including the odd last one
// whose high half is position nt, for pv) comes from zero-padded scratch holding a copy of the valid part, since
// 0 * NaN is NaN in TDPBF16PS. Score columns t >= nt read the block's padding and are never stored (scratch C).
// Their prefetch hint (the next block) is spread over the k steps of the first row group.
// qk_qpacked computes the transposed scores S^T[t][i] = K[t] . Q[i]: A = 16 K rows straight from the cache (row
// stride = the cache's), B = the caller's Q^T pairs (packed once per work item, zero past the data), C = 16 tokens x
// 16 query rows, transposed into S on the way out (transpose_scores16). So no per-block packing is left at all, and
// one B tile feeds up to 4 token tiles. A tiles that would read past the data (the rows of a partial 16-token
// group, the columns of a k step past d) come from zero-padded scratch copies of their valid part: TDPBF16PS gives
// NaN for 0 * NaN, and the zero pairs of Q^T past d would meet whatever the cache holds there.
#include <immintrin.h>

#include <cstring>

#include "cpu/amx_tiles.h"
#include "cpu/attn_buffer.h"
#include "cpu/attn_kernels.h"
#include "cpu/attn_pack.h"
#include "cpu/attn_prefetch.h"

namespace afd::cpu {

namespace {

constexpr int kMinRowsForTiles = 16;
// The pair-layout kernels load B straight from the cache (no packing to amortise), so tiles pay off with fewer
// rows: at 4 of 16 rows a tile still does 4x the multiply-adds per instruction of the AVX-512 dot products. GQA
// decode has 8 rows per kv head: Qwen3-30B-A3B decode on the GPU host (bench/RESULTS.md), pair layout, took
// 13.4 / 15.3 ms with the AVX-512 kernels and 8.3 / 10.8 ms with tiles in the same two runs.
constexpr int kMinRowsForPackedTiles = 4;

// Tiles 0-3 (C, f32 16x16 each), 4 and 6 (A, 16 x 32 bf16; 6 only in qk_qpacked, so consecutive A loads there
// need not wait for the product reading the previous one), 5 (B, 16 pair rows x 16 dwords).
void configure_tiles() { configure_full_tiles(7); }

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

struct Scratch {
  ScratchBuffer<uint16_t> a_buf;  // [16][K padded to 32] bf16
  ScratchBuffer<uint32_t> b_buf;  // packed B
  uint16_t* a = nullptr;          // a_buf / b_buf of the current call
  uint32_t* b = nullptr;
  alignas(64) float c[4][16 * 16];  // C tiles that cannot be loaded / stored in place (partial rows or columns)
};

// Where a C tile of rows x cols at x (row stride ld floats) is loaded from / stored to: x itself when the tile
// is full, else the zero-padded scratch tmp (filled from x before the load, copied back after the store).
// (The tile intrinsics take the tile number as a literal, so callers name it.)
struct CView {
  float* ptr;
  int64_t stride_bytes;
  bool scratch;
};
inline CView c_view(float* x, int64_t ld, int rows, int cols, float* tmp) {
  if (rows == 16 && cols == 16) return {x, ld * 4, false};
  return {tmp, 64, true};
}
inline void c_fill(const CView& v, const float* x, int64_t ld, int rows, int cols) {
  if (!v.scratch) return;
  std::memset(v.ptr, 0, sizeof(float) * 256);
  for (int r = 0; r < rows; ++r) std::memcpy(v.ptr + r * 16, x + r * ld, 4 * static_cast<size_t>(cols));
}
inline void c_flush(const CView& v, float* x, int64_t ld, int rows, int cols) {
  if (!v.scratch) return;
  for (int r = 0; r < rows; ++r) std::memcpy(x + r * ld, v.ptr + r * 16, 4 * static_cast<size_t>(cols));
}

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Where the B rows of k step k0 (pair rows k0 / 2 .. k0 / 2 + 15) are: in `main` (pair-row stride main_stride
// dwords) for k0 < k_main, else in the zero-padded scratch `tail` (its row (k0 - k_main) / 2, stride tail_stride).
struct BRows {
  const uint32_t* main;
  int64_t main_stride;
  int k_main;
  const uint32_t* tail;
  int64_t tail_stride;
  const uint32_t* at(int k0, int64_t& stride) const {
    if (k0 < k_main) {
      stride = main_stride;
      return main + static_cast<int64_t>(k0 / 2) * main_stride;
    }
    stride = tail_stride;
    return tail + static_cast<int64_t>((k0 - k_main) / 2) * tail_stride;
  }
};

// The A tile rows of `rows` x k bf16 values at x (row stride `stride`): x itself when they fill 16 x k32 exactly,
// else a zero-padded copy in scratch (lda = k32).
const uint16_t* a_rows(Scratch& sc, const uint16_t* x, int64_t stride, int rows, int k, int k32, int64_t& lda) {
  if (rows == 16 && k == k32) {
    lda = stride;
    return x;
  }
  std::memset(sc.a, 0, sizeof(uint16_t) * 16 * k32);
  for (int r = 0; r < rows; ++r)
    std::memcpy(&sc.a[static_cast<size_t>(r) * k32], x + r * stride, 2 * static_cast<size_t>(k));
  lda = k32;
  return sc.a;
}

// Scores (rows of s, row stride ld) of one 16-row group against NC t tiles from n0 (A loaded once per k step).
template <int NC>
void qk_tiles(float* s, int64_t ld, int nt, Scratch& sc, const uint16_t* a, int64_t lda, int rows, int d32, int n0,
              const BRows& b, const PrefetchSpread& pf) {
  _tile_zero(0);
  if constexpr (NC > 1) _tile_zero(1);
  for (int k0 = 0; k0 < d32; k0 += 32) {
    pf.step(k0 / 32);
    _tile_loadd(4, a + k0, lda * 2);
    int64_t st;
    const uint32_t* bp = b.at(k0, st) + n0;
    _tile_loadd(5, bp, st * 4);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NC > 1) {
      _tile_loadd(5, bp + 16, st * 4);
      _tile_dpbf16ps(1, 4, 5);
    }
  }
  s += n0;
  const int cols0 = nt - n0 < 16 ? nt - n0 : 16;
  const CView v0 = c_view(s, ld, rows, cols0, sc.c[0]);
  _tile_stored(0, v0.ptr, v0.stride_bytes);
  c_flush(v0, s, ld, rows, cols0);
  if constexpr (NC > 1) {
    const int cols1 = nt - n0 - 16 < 16 ? nt - n0 - 16 : 16;
    const CView v1 = c_view(s + 16, ld, rows, cols1, sc.c[1]);
    _tile_stored(1, v1.ptr, v1.stride_bytes);
    c_flush(v1, s + 16, ld, rows, cols1);
  }
}

// O (rows of o, row stride ld; NC column tiles from c0) += P . V, the accumulators loaded from and stored to O.
template <int NC>
void pv_tiles(float* o, int64_t ld, int dv, Scratch& sc, const uint16_t* a, int64_t lda, int rows, int t32, int c0,
              const BRows& b, const PrefetchSpread& pf) {
  o += c0;
  auto cols = [&](int j) { return dv - c0 - 16 * j < 16 ? dv - c0 - 16 * j : 16; };
  CView v[4];
  for (int j = 0; j < NC; ++j) {
    v[j] = c_view(o + 16 * j, ld, rows, cols(j), sc.c[j]);
    c_fill(v[j], o + 16 * j, ld, rows, cols(j));
  }
  _tile_loadd(0, v[0].ptr, v[0].stride_bytes);
  if constexpr (NC > 1) _tile_loadd(1, v[1].ptr, v[1].stride_bytes);
  if constexpr (NC > 2) _tile_loadd(2, v[2].ptr, v[2].stride_bytes);
  if constexpr (NC > 3) _tile_loadd(3, v[3].ptr, v[3].stride_bytes);
  for (int k0 = 0; k0 < t32; k0 += 32) {
    pf.step(k0 / 32);
    _tile_loadd(4, a + k0, lda * 2);
    int64_t st;
    const uint32_t* bp = b.at(k0, st) + c0;
    _tile_loadd(5, bp, st * 4);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NC > 1) {
      _tile_loadd(5, bp + 16, st * 4);
      _tile_dpbf16ps(1, 4, 5);
    }
    if constexpr (NC > 2) {
      _tile_loadd(5, bp + 32, st * 4);
      _tile_dpbf16ps(2, 4, 5);
    }
    if constexpr (NC > 3) {
      _tile_loadd(5, bp + 48, st * 4);
      _tile_dpbf16ps(3, 4, 5);
    }
  }
  _tile_stored(0, v[0].ptr, v[0].stride_bytes);
  if constexpr (NC > 1) _tile_stored(1, v[1].ptr, v[1].stride_bytes);
  if constexpr (NC > 2) _tile_stored(2, v[2].ptr, v[2].stride_bytes);
  if constexpr (NC > 3) _tile_stored(3, v[3].ptr, v[3].stride_bytes);
  for (int j = 0; j < NC; ++j) c_flush(v[j], o + 16 * j, ld, rows, cols(j));
}

// S [nq, nt] = Q [nq, d] . K^T with K^T's pair rows in b (every k step up to round_up(d, 32), t16 columns).
// pf: prefetched by the first row group, a part per t tile pair.
void qk_run(const QkParams& p, Scratch& sc, const BRows& b, const PrefetchSpread& pf = {}) {
  const int d32 = round_up(p.d, 32), t16 = round_up16(p.nt);
  sc.a = sc.a_buf.get(static_cast<size_t>(16) * d32);
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    int64_t lda;
    const uint16_t* a = a_rows(sc, p.q + static_cast<int64_t>(i0) * p.q_stride, p.q_stride, rows, p.d, d32, lda);
    float* s = p.s + static_cast<int64_t>(i0) * p.s_stride;
    for (int n0 = 0; n0 < t16; n0 += 32) {
      const PrefetchSpread part = i0 == 0 ? pf.part(n0 / 32, (t16 + 31) / 32, d32 / 32) : PrefetchSpread{};
      if (n0 + 16 < t16)
        qk_tiles<2>(s, p.s_stride, p.nt, sc, a, lda, rows, d32, n0, b, part);
      else
        qk_tiles<1>(s, p.s_stride, p.nt, sc, a, lda, rows, d32, n0, b, part);
    }
  }
  _tile_release();
}

// O [nq, dv] += P [nq, nt] . V with V's pair rows in b (every k step up to round_up(nt, 32), c16 columns).
// pf: prefetched by the first row group, a part per group of 4 column tiles.
void pv_run(const PvParams& p, Scratch& sc, const BRows& b, const PrefetchSpread& pf = {}) {
  const int t32 = round_up(p.nt, 32), c16 = round_up16(p.dv);
  sc.a = sc.a_buf.get(static_cast<size_t>(16) * t32);
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    int64_t lda;
    const uint16_t* a = a_rows(sc, p.p + static_cast<int64_t>(i0) * p.p_stride, p.p_stride, rows, p.nt, t32, lda);
    float* o = p.o + static_cast<int64_t>(i0) * p.o_stride;
    for (int c0 = 0; c0 < c16; c0 += 64) {
      const PrefetchSpread part = i0 == 0 ? pf.part(c0 / 64, (c16 + 63) / 64, t32 / 32) : PrefetchSpread{};
      switch ((c16 - c0) / 16) {
        case 1: pv_tiles<1>(o, p.o_stride, p.dv, sc, a, lda, rows, t32, c0, b, part); break;
        case 2: pv_tiles<2>(o, p.o_stride, p.dv, sc, a, lda, rows, t32, c0, b, part); break;
        case 3: pv_tiles<3>(o, p.o_stride, p.dv, sc, a, lda, rows, t32, c0, b, part); break;
        default: pv_tiles<4>(o, p.o_stride, p.dv, sc, a, lda, rows, t32, c0, b, part); break;
      }
    }
  }
  _tile_release();
}

// Where the A rows of one 16-token group are for k step k0 (columns k0 .. k0 + 31): in `main` (row stride
// main_stride elements) for k0 < k_main, else in the zero-padded scratch `tail` (its column k0 - k_main, row stride
// tail_stride).
struct ARows {
  const uint16_t* main;
  int64_t main_stride;
  int k_main;
  const uint16_t* tail;
  int64_t tail_stride;
  const uint16_t* at(int k0, int64_t& stride) const {
    if (k0 < k_main) {
      stride = main_stride;
      return main + k0;
    }
    stride = tail_stride;
    return tail + (k0 - k_main);
  }
};

// S^T tiles of NC consecutive 16-token groups a[0 .. NC) (tokens t0 ..) against the `cols` query rows whose Q^T
// pairs are the columns at b (pair-row stride ldb dwords), transposed into score rows 0 .. cols - 1 of s (row
// stride ld), columns t0 .. below nt. One B load per k step feeds the NC products.
template <int NC>
void qt_tiles(float* s, int64_t ld, int nt, int t0, int cols, Scratch& sc, const ARows* a, int d32,
              const uint32_t* b, int64_t ldb, const PrefetchSpread& pf) {
  _tile_zero(0);
  if constexpr (NC > 1) _tile_zero(1);
  if constexpr (NC > 2) _tile_zero(2);
  if constexpr (NC > 3) _tile_zero(3);
  for (int k0 = 0; k0 < d32; k0 += 32) {
    pf.step(k0 / 32);
    _tile_loadd(5, b + static_cast<int64_t>(k0 / 2) * ldb, ldb * 4);
    int64_t st;
    const uint16_t* ap = a[0].at(k0, st);
    _tile_loadd(4, ap, st * 2);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NC > 1) {
      ap = a[1].at(k0, st);
      _tile_loadd(6, ap, st * 2);
      _tile_dpbf16ps(1, 6, 5);
    }
    if constexpr (NC > 2) {
      ap = a[2].at(k0, st);
      _tile_loadd(4, ap, st * 2);
      _tile_dpbf16ps(2, 4, 5);
    }
    if constexpr (NC > 3) {
      ap = a[3].at(k0, st);
      _tile_loadd(6, ap, st * 2);
      _tile_dpbf16ps(3, 6, 5);
    }
  }
  _tile_stored(0, sc.c[0], 64);
  if constexpr (NC > 1) _tile_stored(1, sc.c[1], 64);
  if constexpr (NC > 2) _tile_stored(2, sc.c[2], 64);
  if constexpr (NC > 3) _tile_stored(3, sc.c[3], 64);
  for (int j = 0; j < NC; ++j) {
    const int tj = t0 + 16 * j, rows = nt - tj < 16 ? nt - tj : 16;
    transpose_scores16(sc.c[j], rows, cols, s + tj, ld);
  }
}

}  // namespace

void qk_bf16_amx(const QkParams& p) {
  if (p.nq < kMinRowsForTiles) return qk_bf16_avx512(p);
  Scratch& sc = scratch();
  const int d32 = round_up(p.d, 32), t16 = round_up16(p.nt);
  sc.b = sc.b_buf.get(static_cast<size_t>(d32 / 2) * t16);
  pack_k_pairs(p.k, p.k_stride, p.nt, p.d, sc.b, t16);  // d32 / 2 pair rows, zero past d
  qk_run(p, sc, {sc.b, t16, d32, nullptr, 0});
}

void pv_bf16_amx(const PvParams& p) {
  if (p.nq < kMinRowsForTiles) return pv_bf16_avx512(p);
  Scratch& sc = scratch();
  const int t32 = round_up(p.nt, 32), c16 = round_up16(p.dv), tp = (p.nt + 1) / 2;
  sc.b = sc.b_buf.get(static_cast<size_t>(t32 / 2) * c16);
  pack_v_pairs(p.v, p.v_stride, p.nt, p.dv, sc.b, c16);
  // Pair rows past the data up to t32 / 2 are read by the last tile: zero them.
  std::memset(&sc.b[static_cast<size_t>(tp) * c16], 0, sizeof(uint32_t) * (t32 / 2 - tp) * c16);
  pv_run(p, sc, {sc.b, c16, t32, nullptr, 0});
}

void qk_kpacked_amx(const QkPackedParams& p) {
  if (p.nq < kMinRowsForPackedTiles) return qk_kpacked_avx512(p);
  Scratch& sc = scratch();
  const int t16 = round_up16(p.nt), d32 = round_up(p.d, 32), k_main = p.d / 32 * 32;
  const uint32_t* kp = reinterpret_cast<const uint32_t*>(p.kp);
  // Tail: pair rows k_main / 2 .. d / 2 - 1 copied (t16 columns, inside the block), the rest of the 16 zero.
  const int tail_rows = (d32 - k_main) / 2;
  sc.b = sc.b_buf.get(static_cast<size_t>(tail_rows) * t16 + 16);
  std::memset(sc.b, 0, sizeof(uint32_t) * tail_rows * t16);
  for (int j = k_main / 2; j < p.d / 2; ++j)
    std::memcpy(&sc.b[static_cast<size_t>(j - k_main / 2) * t16], kp + static_cast<int64_t>(j) * p.kp_stride, 4 * static_cast<size_t>(t16));
  const QkParams rp{p.q, nullptr, p.s, p.q_stride, 0, p.s_stride, p.nq, p.nt, p.d};
  qk_run(rp, sc, {kp, p.kp_stride, k_main, sc.b, t16}, {p.prefetch, p.prefetch_bytes, 1});
}

void pv_vpacked_amx(const PvPackedParams& p) {
  if (p.nq < kMinRowsForPackedTiles) return pv_vpacked_avx512(p);
  Scratch& sc = scratch();
  const int t32 = round_up(p.nt, 32), c16 = round_up16(p.dv), tp = (p.nt + 1) / 2;
  const uint32_t* vp = reinterpret_cast<const uint32_t*>(p.vp);
  // From the cache: the k steps whose 16 pair rows are all below nt. A dv that is not a multiple of 16 would have
  // the last column tile read past the V section, so then every row goes through scratch.
  const int k_main = p.dv % 16 == 0 ? p.nt / 32 * 32 : 0;
  const int tail_rows = (t32 - k_main) / 2;
  sc.b = sc.b_buf.get(static_cast<size_t>(tail_rows) * c16 + 16);
  std::memset(sc.b, 0, sizeof(uint32_t) * tail_rows * c16);
  for (int j = k_main / 2; j < tp; ++j) {
    uint32_t* dst = &sc.b[static_cast<size_t>(j - k_main / 2) * c16];
    std::memcpy(dst, vp + static_cast<int64_t>(j) * p.vp_stride, 4 * static_cast<size_t>(p.dv));
    if (2 * j + 1 == p.nt)
      for (int c = 0; c < p.dv; ++c) dst[c] &= 0xffffu;  // position nt: anything in the cache
  }
  const PvParams rp{p.p, nullptr, p.o, p.p_stride, 0, p.o_stride, p.nq, p.nt, p.dv};
  pv_run(rp, sc, {vp, p.vp_stride, k_main, sc.b, c16}, {p.prefetch, p.prefetch_bytes, 1});
}

// Tiles for any number of query rows: the Q^T pairs were packed by the caller, so there is nothing to amortise.
void qk_qpacked_amx(const QkQPackedParams& p) {
  Scratch& sc = scratch();
  const int d32 = round_up(p.d, 32), k_main = p.d / 32 * 32, groups = (p.nt + 15) / 16;
  const int tail_w = d32 - k_main;  // 0, or 32: the last k step reaches past d
  // Scratch: a [16][tail_w] tail per full group, then the partial last group (nt % 16 rows) as [16][d32].
  sc.a = sc.a_buf.get(static_cast<size_t>(groups) * 16 * tail_w + static_cast<size_t>(16) * d32);
  ARows a[kMaxBlockRows / 16];
  for (int g = 0; g < groups; ++g) {
    const int t0 = 16 * g, rows = p.nt - t0 < 16 ? p.nt - t0 : 16;
    const uint16_t* k = p.k + static_cast<int64_t>(t0) * p.k_stride;
    if (rows == 16) {
      uint16_t* tail = sc.a + static_cast<size_t>(g) * 16 * tail_w;
      if (tail_w) {
        std::memset(tail, 0, sizeof(uint16_t) * 16 * tail_w);
        for (int r = 0; r < 16; ++r)
          std::memcpy(tail + r * tail_w, k + r * p.k_stride + k_main, 2 * static_cast<size_t>(p.d - k_main));
      }
      a[g] = {k, p.k_stride, k_main, tail, tail_w};
    } else {
      uint16_t* part = sc.a + static_cast<size_t>(groups) * 16 * tail_w;
      std::memset(part, 0, sizeof(uint16_t) * 16 * d32);
      for (int r = 0; r < rows; ++r) std::memcpy(part + r * d32, k + r * p.k_stride, 2 * static_cast<size_t>(p.d));
      a[g] = {nullptr, 0, 0, part, d32};
    }
  }
  const PrefetchSpread pf(p.prefetch, p.prefetch_bytes, 1);  // issued by the first query tile, a part per 4 groups
  const int passes = (groups + 3) / 4;
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int cols = p.nq - i0 < 16 ? p.nq - i0 : 16;
    float* s = p.s + static_cast<int64_t>(i0) * p.s_stride;
    const uint32_t* b = p.qt + i0;
    for (int g0 = 0; g0 < groups; g0 += 4) {
      const PrefetchSpread part = i0 == 0 ? pf.part(g0 / 4, passes, d32 / 32) : PrefetchSpread{};
      switch (groups - g0) {
        case 1: qt_tiles<1>(s, p.s_stride, p.nt, 16 * g0, cols, sc, a + g0, d32, b, p.qt_stride, part); break;
        case 2: qt_tiles<2>(s, p.s_stride, p.nt, 16 * g0, cols, sc, a + g0, d32, b, p.qt_stride, part); break;
        case 3: qt_tiles<3>(s, p.s_stride, p.nt, 16 * g0, cols, sc, a + g0, d32, b, p.qt_stride, part); break;
        default: qt_tiles<4>(s, p.s_stride, p.nt, 16 * g0, cols, sc, a + g0, d32, b, p.qt_stride, part); break;
      }
    }
  }
  _tile_release();
}

}  // namespace afd::cpu
