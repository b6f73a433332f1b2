// The three steps of block attention over a bf16 KV cache, one implementation per ISA
// (attn_scalar.cpp, attn_avx2.cpp, attn_avx512.cpp, attn_amx.cpp), chosen at run time (kernels_for).
//   qk:      S[i][t]  = sum_d Q[i][d] * K[t][d]     scores of nq query rows against nt cached rows
//   softmax: online-softmax step of one block: P[i][t] = bf16(e^(S[i][t] * scale - m_new[i])) on visible t
//   pv:      O[i][c] += sum_t P[i][t] * V[t][c]     probability-weighted sum of nt value rows
// Q, K, P, V are bf16 bits, S and O float32. Every product is exact in fp32 (bf16 x bf16) and accumulated in fp32,
// so the ISAs differ from the scalar reference only by summation order. Kernels read exactly nt rows of K and V:
// rows past nt may hold anything (NaN in the tests) and must not influence the result.
// qk_kpacked / pv_vpacked are the same products over K / V already stored in the dword-pair layouts of the paged
// cache (attn_cpu/kv_cache.h, KvRowLayout::kPairs), so a decode step reads the cache without repacking it.
// qk_qpacked is qk over K rows (KvRowLayout::kRows, e.g. MLA) with Q^T also given in the dword-pair layout, packed
// once per work item (pack_qt_pairs): with few query rows the AMX kernel computes S^T = K . Q^T with the K rows as
// the A tiles straight from the cache, instead of packing K^T into pairs per block for only those few rows.
#pragma once

#include <cstdint>

#include "cpu/cpu_isa.h"

namespace afd::cpu {

struct QkParams {
  const uint16_t* q = nullptr;  // [nq, d] bf16, row stride q_stride elements
  const uint16_t* k = nullptr;  // [nt, d] bf16, row stride k_stride elements
  float* s = nullptr;           // [nq, nt] f32 out, row stride s_stride elements (overwritten)
  int q_stride = 0, k_stride = 0, s_stride = 0;
  int nq = 0;                   // query rows, >= 1
  int nt = 0;                   // key rows, 1..kMaxBlockRows
  int d = 0;                    // dot length, >= 1 (any value; vector tails are masked)
};

struct PvParams {
  const uint16_t* p = nullptr;  // [nq, nt] bf16 probabilities, row stride p_stride elements
  const uint16_t* v = nullptr;  // [nt, dv] bf16, row stride v_stride elements
  float* o = nullptr;           // [nq, dv] f32 accumulators, row stride o_stride elements (added to)
  int p_stride = 0, v_stride = 0, o_stride = 0;
  int nq = 0;                   // query rows, >= 1
  int nt = 0;                   // value rows, 1..kMaxBlockRows
  int dv = 0;                   // value width, >= 1
};

// K in pairs: the pair (K[t][2j], K[t][2j+1]) at kp[2 (j * kp_stride + t)] and kp[2 (j * kp_stride + t) + 1].
// Loaded for j < d / 2 and t < round_up(nt, 16), so kp_stride >= round_up(nt, 16) and all of that must be readable;
// what sits at t >= nt may be anything (NaN): those score lanes are computed but never stored.
struct QkPackedParams {
  const uint16_t* q = nullptr;   // [nq, d] bf16, row stride q_stride elements
  const uint16_t* kp = nullptr;  // [d / 2][kp_stride] bf16 pairs
  float* s = nullptr;            // [nq, nt] f32 out, row stride s_stride elements (overwritten)
  int q_stride = 0, kp_stride = 0, s_stride = 0;  // kp_stride in pairs
  int nq = 0;                    // query rows, >= 1
  int nt = 0;                    // key positions, 1..kMaxBlockRows
  int d = 0;                     // dot length, even, >= 2
  // Optional hint: [prefetch, prefetch + prefetch_bytes) is read soon (the next block's K section); the AVX2,
  // AVX-512 and AMX kernels prefetch it a few lines per loop step (attn_prefetch.h). Never dereferenced.
  const void* prefetch = nullptr;
  int64_t prefetch_bytes = 0;
};

// V in pairs: the pair (V[2tp][c], V[2tp+1][c]) at vp[2 (tp * vp_stride + c)] and vp[2 (tp * vp_stride + c) + 1].
// Read only for tp < (nt + 1) / 2 and c < dv (vp_stride >= dv); with odd nt the high half of the last pair row
// (position nt) is anything and is masked to zero before it is multiplied (0 * NaN would be NaN).
struct PvPackedParams {
  const uint16_t* p = nullptr;   // [nq, nt] bf16 probabilities, row stride p_stride elements
  const uint16_t* vp = nullptr;  // [(nt + 1) / 2][vp_stride] bf16 pairs
  float* o = nullptr;            // [nq, dv] f32 accumulators, row stride o_stride elements (added to)
  int p_stride = 0, vp_stride = 0, o_stride = 0;  // vp_stride in pairs
  int nq = 0;                    // query rows, >= 1
  int nt = 0;                    // value positions, 1..kMaxBlockRows
  int dv = 0;                    // value width, >= 1
  const void* prefetch = nullptr;  // optional hint, as in QkPackedParams (the next block's V section)
  int64_t prefetch_bytes = 0;
};

// Q^T in pairs (pack_qt_pairs): the pair (Q[i][2j], Q[i][2j+1]) is the dword qt[j * qt_stride + i], for
// j < qt_pair_rows(d) and i < qt_stride = qt_cols(nq); pairs past the data (i >= nq, and the high half of the last
// pair when d is odd, and pair rows j >= (d + 1) / 2) are zero, so they contribute exact zeros to AMX tile products.
// q and qt hold the same Q: each ISA reads the form its loops want (AMX and, with 9..16 rows, AVX-512: qt).
struct QkQPackedParams {
  const uint16_t* q = nullptr;   // [nq, d] bf16, row stride q_stride elements
  const uint32_t* qt = nullptr;  // [qt_pair_rows(d)][qt_stride] dword pairs of the same Q
  const uint16_t* k = nullptr;   // [nt, d] bf16, row stride k_stride elements; rows past nt may hold anything
  float* s = nullptr;            // [nq, nt] f32 out, row stride s_stride elements (overwritten)
  int q_stride = 0, qt_stride = 0, k_stride = 0, s_stride = 0;  // qt_stride in dwords, = qt_cols(nq)
  int nq = 0;                    // query rows, >= 1
  int nt = 0;                    // key rows, 1..kMaxBlockRows
  int d = 0;                     // dot length, 1..kMaxRowWidth
  const void* prefetch = nullptr;  // optional hint, as in QkPackedParams (the next block's rows)
  int64_t prefetch_bytes = 0;
};

// Shape of the Q^T pair buffer of qk_qpacked: pair rows (d / 2 rounded up to whole 16-row B tiles) and columns
// (query rows rounded up to whole 16-column B tiles); qt_pair_rows(d) * qt_cols(nq) dwords in all.
constexpr int qt_pair_rows(int d) { return (d + 31) / 32 * 16; }
constexpr int qt_cols(int nq) { return (nq + 15) / 16 * 16; }
// qt = Q^T in pairs, every one of its qt_pair_rows(d) * qt_cols(nq) dwords written (zero past the data). Plain
// code for any CPU (attn_scalar.cpp); a caller packs once per work item and reuses qt for every block.
void pack_qt_pairs(const uint16_t* q, int q_stride, int nq, int d, uint32_t* qt);

struct SoftmaxParams {
  float* s = nullptr;           // [nq, nt] raw scores (clobbered), row stride s_stride elements
  uint16_t* p = nullptr;        // [nq, nt] bf16 out: e^(s * scale - m_new), 0 where t is not visible
  const int* lo = nullptr;      // [nq] first visible t of each row (block coordinates; may be < 0)
  const int* hi = nullptr;      // [nq] one past the last visible t (may be > nt); lo >= hi: nothing visible
  float* m = nullptr;           // [nq] running max of scale * s over everything seen so far (-inf: none), updated
  float* l = nullptr;           // [nq] running sum of the p values, rescaled to m_new and updated
  float* alpha = nullptr;       // [nq] out: e^(m_old - m_new), the factor the caller applies to its accumulators
  int s_stride = 0, p_stride = 0;
  int nq = 0, nt = 0;
  float scale = 1.0f;
};

// The most rows of K/V one call may cover (the AMX kernel packs a block into scratch of this many rows).
constexpr int kMaxBlockRows = 256;
// The widest q/k/v row the AMX and AVX-512 kernels accept (MLA: 512 latent + 64 rope).
constexpr int kMaxRowWidth = 1024;

struct AttnKernels {
  Isa isa = Isa::kScalar;
  void (*qk)(const QkParams&) = nullptr;
  void (*pv)(const PvParams&) = nullptr;
  void (*softmax)(const SoftmaxParams&) = nullptr;
  void (*qk_kpacked)(const QkPackedParams&) = nullptr;
  void (*pv_vpacked)(const PvPackedParams&) = nullptr;
  void (*qk_qpacked)(const QkQPackedParams&) = nullptr;
  // V rows -> the dword-pair layout pv_vpacked reads (pack_v_pairs below), for callers that gather the value rows
  // of several cache blocks into one pv_vpacked call.
  void (*pack_v)(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16) = nullptr;
  // float8_e4m3fn -> bf16 (exact; NaN codes -> bf16 NaN with their sign): the fp8 KV cache's rows, per block.
  void (*fp8_to_bf16)(const uint8_t* src, uint16_t* dst, int64_t n) = nullptr;
};

// The kernels of `isa`, or nullptr when this CPU cannot run them (cpu_supports(isa) is false).
const AttnKernels* kernels_for(Isa isa);

// pack_v: vp[j * c16 + c] = V[2j][c] | V[2j+1][c] << 16 (bf16 bits) for pair rows j < (nt + 1) / 2 and columns
// c < c16 = round_up(dv, 16); zero for c >= dv and in the high half of the last pair row when nt is odd. Reads only
// V rows t < nt (row stride v_stride elements) and their first dv columns.

// Per-ISA entry points; call only through kernels_for().
void qk_bf16_scalar(const QkParams& p);
void pv_bf16_scalar(const PvParams& p);
void softmax_f32_scalar(const SoftmaxParams& p);
void qk_bf16_avx2(const QkParams& p);
void pv_bf16_avx2(const PvParams& p);
void softmax_f32_avx2(const SoftmaxParams& p);
void softmax_f32_avx512(const SoftmaxParams& p);  // also the softmax of the AMX table
void qk_bf16_avx512(const QkParams& p);
void pv_bf16_avx512(const PvParams& p);
void qk_bf16_amx(const QkParams& p);
void pv_bf16_amx(const PvParams& p);
void qk_kpacked_scalar(const QkPackedParams& p);
void pv_vpacked_scalar(const PvPackedParams& p);
void qk_kpacked_avx2(const QkPackedParams& p);
void pv_vpacked_avx2(const PvPackedParams& p);
void qk_kpacked_avx512(const QkPackedParams& p);
void pv_vpacked_avx512(const PvPackedParams& p);
void qk_kpacked_amx(const QkPackedParams& p);
void pv_vpacked_amx(const PvPackedParams& p);
void qk_qpacked_scalar(const QkQPackedParams& p);
void qk_qpacked_avx2(const QkQPackedParams& p);
void qk_qpacked_avx512(const QkQPackedParams& p);
void qk_qpacked_amx(const QkQPackedParams& p);
void pack_v_scalar(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16);
void pack_v_avx2(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16);
// (the AVX-512 and AMX tables' pack_v is pack_v_pairs, attn_pack.h)
void fp8_to_bf16_scalar(const uint8_t* src, uint16_t* dst, int64_t n);
void fp8_to_bf16_avx2(const uint8_t* src, uint16_t* dst, int64_t n);
void fp8_to_bf16_avx512(const uint8_t* src, uint16_t* dst, int64_t n);  // also the AMX table's

}  // namespace afd::cpu
