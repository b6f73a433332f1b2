// AMX-BF16 attention kernels (compiled with -mamx-tile -mamx-bf16; reached only when cpu_supports(kAmx), which
// also obtained the XTILEDATA permission through arch_prctl). TDPBF16PS: C[16x16 f32] += A[16 x 32 bf16] . B,
// B in the dword-pair layout B[j][n] = (X[2j][n], X[2j+1][n]), which is exactly what attn_pack.h produces:
//   qk: A = 16 query rows, B = pack_k_pairs(K) (K^T in pairs), C = 16 x 16 scores;
//   pv: A = 16 rows of P,  B = pack_v_pairs(V),               C = 16 x 16 outputs (loaded from O, added to).
// A tiles are copied into zero-padded scratch, and the packed B rows past the data are zero, so padding
// contributes exact zeros. One A tile feeds 2 (qk) or 4 (pv) C tiles; full C tiles are loaded from and stored to
// S / O in place, partial ones go through scratch. With fewer than 16 query rows a tile would be mostly padding: those calls use the
// AVX-512 BF16 kernels (every AMX CPU has AVX-512 BF16).
#include <immintrin.h>

#include <cstring>

#include "cpu/attn_buffer.h"
#include "cpu/attn_kernels.h"
#include "cpu/attn_pack.h"

namespace afd::cpu {

namespace {

constexpr int kMinRowsForTiles = 16;

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3 (C, f32 16x16 each), 4 (A, 16 x 32 bf16), 5 (B, 16 pair rows x 16 dwords): all 16 rows of 64 bytes.
void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 6; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

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

// Scores of one 16-row group against NC t tiles starting at n0 (A loaded once per k step for all of them).
template <int NC>
void qk_tiles(const QkParams& p, Scratch& sc, const uint16_t* a, int64_t lda, int i0, int rows, int d32, int t16, int n0) {
  _tile_zero(0);
  if constexpr (NC > 1) _tile_zero(1);
  for (int k0 = 0; k0 < d32; k0 += 32) {
    _tile_loadd(4, a + k0, lda * 2);
    const uint32_t* b = &sc.b[static_cast<size_t>(k0 / 2) * t16 + n0];
    _tile_loadd(5, b, t16 * 4);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NC > 1) {
      _tile_loadd(5, b + 16, t16 * 4);
      _tile_dpbf16ps(1, 4, 5);
    }
  }
  float* s = p.s + static_cast<int64_t>(i0) * p.s_stride + n0;
  const int cols0 = p.nt - n0 < 16 ? p.nt - n0 : 16;
  const CView v0 = c_view(s, p.s_stride, rows, cols0, sc.c[0]);
  _tile_stored(0, v0.ptr, v0.stride_bytes);
  c_flush(v0, s, p.s_stride, rows, cols0);
  if constexpr (NC > 1) {
    const int cols1 = p.nt - n0 - 16 < 16 ? p.nt - n0 - 16 : 16;
    const CView v1 = c_view(s + 16, p.s_stride, rows, cols1, sc.c[1]);
    _tile_stored(1, v1.ptr, v1.stride_bytes);
    c_flush(v1, s + 16, p.s_stride, rows, cols1);
  }
}

// O (16-row group, NC column tiles from c0) += P . V, the accumulators loaded from and stored back to O.
template <int NC>
void pv_tiles(const PvParams& p, Scratch& sc, const uint16_t* a, int64_t lda, int i0, int rows, int t32, int c16, int c0) {
  float* o = p.o + static_cast<int64_t>(i0) * p.o_stride + c0;
  auto cols = [&](int j) { return p.dv - c0 - 16 * j < 16 ? p.dv - c0 - 16 * j : 16; };
  CView v[4];
  for (int j = 0; j < NC; ++j) {
    v[j] = c_view(o + 16 * j, p.o_stride, rows, cols(j), sc.c[j]);
    c_fill(v[j], o + 16 * j, p.o_stride, rows, cols(j));
  }
  _tile_loadd(0, v[0].ptr, v[0].stride_bytes);
  if constexpr (NC > 1) _tile_loadd(1, v[1].ptr, v[1].stride_bytes);
  if constexpr (NC > 2) _tile_loadd(2, v[2].ptr, v[2].stride_bytes);
  if constexpr (NC > 3) _tile_loadd(3, v[3].ptr, v[3].stride_bytes);
  for (int k0 = 0; k0 < t32; k0 += 32) {
    _tile_loadd(4, a + k0, lda * 2);
    const uint32_t* b = &sc.b[static_cast<size_t>(k0 / 2) * c16 + c0];
    _tile_loadd(5, b, c16 * 4);
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NC > 1) {
      _tile_loadd(5, b + 16, c16 * 4);
      _tile_dpbf16ps(1, 4, 5);
    }
    if constexpr (NC > 2) {
      _tile_loadd(5, b + 32, c16 * 4);
      _tile_dpbf16ps(2, 4, 5);
    }
    if constexpr (NC > 3) {
      _tile_loadd(5, b + 48, c16 * 4);
      _tile_dpbf16ps(3, 4, 5);
    }
  }
  _tile_stored(0, v[0].ptr, v[0].stride_bytes);
  if constexpr (NC > 1) _tile_stored(1, v[1].ptr, v[1].stride_bytes);
  if constexpr (NC > 2) _tile_stored(2, v[2].ptr, v[2].stride_bytes);
  if constexpr (NC > 3) _tile_stored(3, v[3].ptr, v[3].stride_bytes);
  for (int j = 0; j < NC; ++j) c_flush(v[j], o + 16 * j, p.o_stride, rows, cols(j));
}

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

void qk_bf16_amx(const QkParams& p) {
  if (p.nq < kMinRowsForTiles) return qk_bf16_avx512(p);
  Scratch& sc = scratch();
  const int d32 = round_up(p.d, 32), t16 = round_up16(p.nt);
  sc.a = sc.a_buf.get(static_cast<size_t>(16) * d32);
  sc.b = sc.b_buf.get(static_cast<size_t>(d32 / 2) * t16);
  pack_k_pairs(p.k, p.k_stride, p.nt, p.d, sc.b, t16);  // d32 / 2 pair rows, zero past d
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    // A = the 16 query rows: read in place when they fill the tile exactly, else from zero-padded scratch.
    const uint16_t* a = p.q + static_cast<int64_t>(i0) * p.q_stride;
    int64_t lda = p.q_stride;
    if (rows < 16 || p.d != d32) {
      std::memset(sc.a, 0, sizeof(uint16_t) * 16 * d32);
      for (int r = 0; r < rows; ++r)
        std::memcpy(&sc.a[static_cast<size_t>(r) * d32], p.q + static_cast<int64_t>(i0 + r) * p.q_stride, 2 * static_cast<size_t>(p.d));
      a = sc.a;
      lda = d32;
    }
    for (int n0 = 0; n0 < t16; n0 += 32) {
      if (n0 + 16 < t16)
        qk_tiles<2>(p, sc, a, lda, i0, rows, d32, t16, n0);
      else
        qk_tiles<1>(p, sc, a, lda, i0, rows, d32, t16, n0);
    }
  }
  _tile_release();
}

void pv_bf16_amx(const PvParams& p) {
  if (p.nq < kMinRowsForTiles) return pv_bf16_avx512(p);
  Scratch& sc = scratch();
  const int t32 = round_up(p.nt, 32), c16 = round_up16(p.dv), tp = (p.nt + 1) / 2;
  sc.a = sc.a_buf.get(static_cast<size_t>(16) * t32);
  sc.b = sc.b_buf.get(static_cast<size_t>(t32 / 2) * c16);
  pack_v_pairs(p.v, p.v_stride, p.nt, p.dv, sc.b, c16);
  // Pair rows past the data up to t32 / 2 are read by the last tile: zero them.
  std::memset(&sc.b[static_cast<size_t>(tp) * c16], 0, sizeof(uint32_t) * (t32 / 2 - tp) * c16);
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    // A = the 16 rows of P: in place when they fill the tile exactly, else from zero-padded scratch.
    const uint16_t* a = p.p + static_cast<int64_t>(i0) * p.p_stride;
    int64_t lda = p.p_stride;
    if (rows < 16 || p.nt != t32) {
      std::memset(sc.a, 0, sizeof(uint16_t) * 16 * t32);
      for (int r = 0; r < rows; ++r)
        std::memcpy(&sc.a[static_cast<size_t>(r) * t32], p.p + static_cast<int64_t>(i0 + r) * p.p_stride, 2 * static_cast<size_t>(p.nt));
      a = sc.a;
      lda = t32;
    }
    for (int c0 = 0; c0 < c16; c0 += 64) {
      switch ((c16 - c0) / 16) {
        case 1: pv_tiles<1>(p, sc, a, lda, i0, rows, t32, c16, c0); break;
        case 2: pv_tiles<2>(p, sc, a, lda, i0, rows, t32, c16, c0); break;
        case 3: pv_tiles<3>(p, sc, a, lda, i0, rows, t32, c16, c0); break;
        default: pv_tiles<4>(p, sc, a, lda, i0, rows, t32, c16, c0); break;
      }
    }
  }
  _tile_release();
}

}  // namespace afd::cpu
