// Packing of K and V blocks into the dword-pair layouts that vdpbf16ps and AMX TDPBF16PS read, and the transposition
// of score tiles (implemented in attn_avx512.cpp, shared with attn_amx.cpp; call only on CPUs with AVX-512 BF16).
//   pack_k_pairs: kp[j][t] = (K[t][2j], K[t][2j+1]) for j < ceil(d/2) rounded up to 16, t < nt rounded up to 16
//   pack_v_pairs: vp[j][c] = (V[2j][c], V[2j+1][c]) for j < ceil(nt/2), c < dv rounded up to 16
// Everything outside nt x d (resp. nt x dv) is zero, and only those rows and columns of K / V are read.
//   transpose_scores16: score rows out of a 16 x 16 tile of S^T (the AMX qk_qpacked kernel's C tiles).
#pragma once

#include <cstdint>

namespace afd::cpu {

namespace {  // internal linkage: each per-ISA file keeps its own copy
inline int round_up16(int x) { return (x + 15) / 16 * 16; }
}  // namespace

// kp: [round_up16((d + 1) / 2)][t16] dwords, t16 = round_up16(nt).
void pack_k_pairs(const uint16_t* k, int k_stride, int nt, int d, uint32_t* kp, int t16);
// vp: [(nt + 1) / 2][c16] dwords, c16 = round_up16(dv).
void pack_v_pairs(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16);
// s[i * s_stride + t] = c[t * 16 + i] for i < nq (<= 16), t < nt (<= 16); nothing else of s is written.
void transpose_scores16(const float* c, int nt, int nq, float* s, int64_t s_stride);

}  // namespace afd::cpu
