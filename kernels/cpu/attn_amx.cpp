// AMX-BF16 attention kernels (compiled with -mamx-tile -mamx-bf16; reached only when cpu_supports(kAmx), which
// also obtained the XTILEDATA permission through arch_prctl). TDPBF16PS: C[16x16 f32] += A[16 x 32 bf16] . B,
// B in the dword-pair layout B[j][n] = (X[2j][n], X[2j+1][n]), which is exactly what attn_pack.h produces:
//   qk: A = 16 query rows, B = pack_k_pairs(K) (K^T in pairs), C = 16 x 16 scores;
//   pv: A = 16 rows of P,  B = pack_v_pairs(V),               C = 16 x 16 outputs (loaded from O, added to).
// A tiles are copied into zero-padded scratch, and the packed B rows past the data are zero, so padding
// contributes exact zeros. With fewer than 16 query rows a tile would be mostly padding: those calls use the
// AVX-512 BF16 kernels (every AMX CPU has AVX-512 BF16).
#include <immintrin.h>

#include <cstring>
#include <vector>

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

// Tiles 0 (C, f32 16x16), 1 (A, 16 x 32 bf16), 2 (B, 16 pair rows x 16 dwords): all 16 rows of 64 bytes.
void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 3; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

struct Scratch {
  std::vector<uint16_t> a;  // [16][K padded to 32] bf16
  std::vector<uint32_t> b;  // packed B
  alignas(64) float c[16 * 16];
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

void qk_bf16_amx(const QkParams& p) {
  if (p.nq < kMinRowsForTiles) return qk_bf16_avx512(p);
  Scratch& sc = scratch();
  const int d32 = round_up(p.d, 32), t16 = round_up16(p.nt);
  if (sc.a.size() < static_cast<size_t>(16) * d32) sc.a.resize(static_cast<size_t>(16) * d32);
  if (sc.b.size() < static_cast<size_t>(d32 / 2) * t16) sc.b.resize(static_cast<size_t>(d32 / 2) * t16);
  pack_k_pairs(p.k, p.k_stride, p.nt, p.d, sc.b.data(), t16);  // d32 / 2 pair rows, zero past d
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    std::memset(sc.a.data(), 0, sizeof(uint16_t) * 16 * d32);
    for (int r = 0; r < rows; ++r)
      std::memcpy(&sc.a[static_cast<size_t>(r) * d32], p.q + static_cast<int64_t>(i0 + r) * p.q_stride, 2 * static_cast<size_t>(p.d));
    for (int n0 = 0; n0 < t16; n0 += 16) {
      _tile_zero(0);
      for (int k0 = 0; k0 < d32; k0 += 32) {
        _tile_loadd(1, &sc.a[k0], d32 * 2);
        _tile_loadd(2, &sc.b[static_cast<size_t>(k0 / 2) * t16 + n0], t16 * 4);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, sc.c, 64);
      const int cols = p.nt - n0 < 16 ? p.nt - n0 : 16;
      for (int r = 0; r < rows; ++r)
        std::memcpy(p.s + static_cast<int64_t>(i0 + r) * p.s_stride + n0, &sc.c[r * 16], 4 * static_cast<size_t>(cols));
    }
  }
  _tile_release();
}

void pv_bf16_amx(const PvParams& p) {
  if (p.nq < kMinRowsForTiles) return pv_bf16_avx512(p);
  Scratch& sc = scratch();
  const int t32 = round_up(p.nt, 32), c16 = round_up16(p.dv), tp = (p.nt + 1) / 2;
  if (sc.a.size() < static_cast<size_t>(16) * t32) sc.a.resize(static_cast<size_t>(16) * t32);
  if (sc.b.size() < static_cast<size_t>(t32 / 2) * c16) sc.b.resize(static_cast<size_t>(t32 / 2) * c16);
  pack_v_pairs(p.v, p.v_stride, p.nt, p.dv, sc.b.data(), c16);
  // Pair rows past the data up to t32 / 2 are read by the last tile: zero them.
  std::memset(&sc.b[static_cast<size_t>(tp) * c16], 0, sizeof(uint32_t) * (t32 / 2 - tp) * c16);
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    std::memset(sc.a.data(), 0, sizeof(uint16_t) * 16 * t32);
    for (int r = 0; r < rows; ++r)
      std::memcpy(&sc.a[static_cast<size_t>(r) * t32], p.p + static_cast<int64_t>(i0 + r) * p.p_stride, 2 * static_cast<size_t>(p.nt));
    for (int c0 = 0; c0 < c16; c0 += 16) {
      const int cols = p.dv - c0 < 16 ? p.dv - c0 : 16;
      std::memset(sc.c, 0, sizeof(sc.c));
      for (int r = 0; r < rows; ++r)
        std::memcpy(&sc.c[r * 16], p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c0, 4 * static_cast<size_t>(cols));
      _tile_loadd(0, sc.c, 64);
      for (int k0 = 0; k0 < t32; k0 += 32) {
        _tile_loadd(1, &sc.a[k0], t32 * 2);
        _tile_loadd(2, &sc.b[static_cast<size_t>(k0 / 2) * c16 + c0], c16 * 4);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, sc.c, 64);
      for (int r = 0; r < rows; ++r)
        std::memcpy(p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c0, &sc.c[r * 16], 4 * static_cast<size_t>(cols));
    }
  }
  _tile_release();
}

}  // namespace afd::cpu
