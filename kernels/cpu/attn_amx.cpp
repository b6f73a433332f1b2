// AMX-BF16 attention kernels (compiled with -mamx-tile -mamx-bf16; reached only when cpu_supports(kAmx), which
// also obtained the XTILEDATA permission through arch_prctl). One 16x16 f32 accumulator tile, one A tile of
// 16 rows x 32 bf16 and one B tile of 16 pair-rows x 16 columns (VNNI layout: B[p][n] = (X[2p][n], X[2p+1][n])).
//   qk: A = Q rows, B = K^T, so B[p][n] = (K[n][2p], K[n][2p+1]): a 32-bit transpose of the K block.
//   pv: A = P rows, B = V,   so B[p][c] = (V[2p][c], V[2p+1][c]): rows t and t+1 interleaved.
// Operands are packed into zero-padded per-thread scratch first, so padding rows/columns contribute exact zeros
// and rows of K/V past nt are never read.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "cpu/attn_kernels.h"

namespace afd::cpu {

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0 (C, f32 16x16), 1 (A, 16 x 32 bf16), 2 (B, 16 x 32 bf16): all 16 rows of 64 bytes.
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
  std::vector<uint16_t> a;  // [16][K padded to 32]
  std::vector<uint16_t> b;  // [K/2 padded][N padded to 16][2]
  alignas(64) float c[16 * 16];
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

void qk_bf16_amx(const QkParams& p) {
  Scratch& sc = scratch();
  const int d32 = round_up(p.d, 32), n16 = round_up(p.nt, 16);
  sc.a.resize(static_cast<size_t>(16) * d32);
  sc.b.resize(static_cast<size_t>(d32) * n16);
  // B = K^T in VNNI pairs: b[(pair * n16 + n) * 2 + {0,1}] = K[n][2 pair + {0,1}], zero outside nt x d.
  uint32_t* b32 = reinterpret_cast<uint32_t*>(sc.b.data());
  std::memset(b32, 0, sizeof(uint32_t) * (d32 / 2) * n16);
  for (int n = 0; n < p.nt; ++n) {
    const uint16_t* k = p.k + static_cast<int64_t>(n) * p.k_stride;
    for (int pr = 0; pr < p.d / 2; ++pr) std::memcpy(&b32[static_cast<size_t>(pr) * n16 + n], k + 2 * pr, 4);
    if (p.d % 2) b32[static_cast<size_t>(p.d / 2) * n16 + n] = k[p.d - 1];
  }
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    std::memset(sc.a.data(), 0, sizeof(uint16_t) * 16 * d32);
    for (int r = 0; r < rows; ++r)
      std::memcpy(&sc.a[static_cast<size_t>(r) * d32], p.q + static_cast<int64_t>(i0 + r) * p.q_stride, 2 * p.d);
    for (int n0 = 0; n0 < n16; n0 += 16) {
      _tile_zero(0);
      for (int k0 = 0; k0 < d32; k0 += 32) {
        _tile_loadd(1, &sc.a[k0], d32 * 2);
        _tile_loadd(2, &b32[static_cast<size_t>(k0 / 2) * n16 + n0], n16 * 4);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, sc.c, 64);
      const int cols = p.nt - n0 < 16 ? p.nt - n0 : 16;
      for (int r = 0; r < rows; ++r)
        std::memcpy(p.s + static_cast<int64_t>(i0 + r) * p.s_stride + n0, &sc.c[r * 16], 4 * cols);
    }
  }
  _tile_release();
}

void pv_bf16_amx(const PvParams& p) {
  Scratch& sc = scratch();
  const int t32 = round_up(p.nt, 32), c16 = round_up(p.dv, 16);
  sc.a.resize(static_cast<size_t>(16) * t32);
  sc.b.resize(static_cast<size_t>(t32) * c16);
  // B = V in VNNI pairs: b[(pair * c16 + c) * 2 + {0,1}] = V[2 pair + {0,1}][c], zero outside nt x dv.
  std::memset(sc.b.data(), 0, sizeof(uint16_t) * t32 * c16);
  for (int t = 0; t < p.nt; ++t) {
    const uint16_t* v = p.v + static_cast<int64_t>(t) * p.v_stride;
    uint16_t* dst = &sc.b[static_cast<size_t>(t / 2) * c16 * 2 + (t % 2)];
    for (int c = 0; c < p.dv; ++c) dst[2 * c] = v[c];
  }
  configure_tiles();
  for (int i0 = 0; i0 < p.nq; i0 += 16) {
    const int rows = p.nq - i0 < 16 ? p.nq - i0 : 16;
    std::memset(sc.a.data(), 0, sizeof(uint16_t) * 16 * t32);
    for (int r = 0; r < rows; ++r)
      std::memcpy(&sc.a[static_cast<size_t>(r) * t32], p.p + static_cast<int64_t>(i0 + r) * p.p_stride, 2 * p.nt);
    for (int c0 = 0; c0 < c16; c0 += 16) {
      const int cols = p.dv - c0 < 16 ? p.dv - c0 : 16;
      std::memset(sc.c, 0, sizeof(sc.c));
      for (int r = 0; r < rows; ++r)
        std::memcpy(&sc.c[r * 16], p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c0, 4 * cols);
      _tile_loadd(0, sc.c, 64);
      for (int k0 = 0; k0 < t32; k0 += 32) {
        _tile_loadd(1, &sc.a[k0], t32 * 2);
        _tile_loadd(2, &sc.b[static_cast<size_t>(k0 / 2) * c16 * 2 + c0 * 2], c16 * 4);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, sc.c, 64);
      for (int r = 0; r < rows; ++r)
        std::memcpy(p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c0, &sc.c[r * 16], 4 * cols);
    }
  }
  _tile_release();
}

}  // namespace afd::cpu
