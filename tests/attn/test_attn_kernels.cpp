// Every attention kernel ISA this CPU supports against the scalar reference (kernels/cpu/attn_scalar.cpp), at odd
// sizes, with NaN in the rows past nt and in the row padding past d / dv so that stray reads show up. ISAs the
// CPU lacks are reported (WARN), never counted as passed.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/attn_kernels.h"
#include "cpu/peak.h"
#include "util/numeric.h"

using namespace afd;
using namespace afd::cpu;

namespace {

constexpr uint16_t kNanBf16 = 0x7fc0;
// Summation-order tolerance: each result is a sum of at most 1024 exact fp32 products accumulated in fp32, in a
// different order per ISA (and pairwise in vdpbf16ps / AMX). The worst-case order difference is n * 2^-24 of the
// sum of |terms| (6e-5 at n = 1024); measured errors are below 1e-6 of it. 1e-4 * sum|terms| leaves no room for
// a wrong element, a missed row or a NaN.
constexpr double kOrderTol = 1e-4;

std::vector<uint16_t> random_bf16(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<uint16_t> v(n);
  for (auto& x : v) {
    float f = d(rng);
    if (f == 0.0f) f = 0.5f;  // never zero
    x = f32_to_bf16(f);
  }
  return v;
}

// rows x cols inside a [rows + 2] x stride buffer; padding columns and the 2 extra rows are NaN.
std::vector<uint16_t> padded(int rows, int cols, int stride, uint64_t seed, float lo, float hi) {
  std::vector<uint16_t> v(static_cast<size_t>(rows + 2) * stride, kNanBf16);
  const auto r = random_bf16(static_cast<size_t>(rows) * cols, seed, lo, hi);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) v[static_cast<size_t>(i) * stride + j] = r[static_cast<size_t>(i) * cols + j];
  return v;
}

std::string isa_report() {
  std::string tested, missing;
  for (Isa i : kAllIsas) (cpu_supports(i) ? tested : missing) += std::string(" ") + isa_name(i);
  return "attention kernels exercised on this CPU:" + tested + "; NOT supported here (not tested):" +
         (missing.empty() ? " none" : missing);
}

// K rows [nt][d] (row stride ks) in the cache's pair layout: kp[j][t] = (K[t][2j], K[t][2j+1]) with row stride
// kp_stride pairs; positions t >= nt, and one pair row past d / 2, hold NaN (what an unwritten cache holds).
std::vector<uint16_t> k_pairs(const std::vector<uint16_t>& k, int ks, int nt, int d, int kp_stride) {
  std::vector<uint16_t> kp(2 * static_cast<size_t>(d / 2 + 1) * kp_stride, kNanBf16);
  for (int j = 0; j < d / 2; ++j)
    for (int t = 0; t < nt; ++t)
      for (int h = 0; h < 2; ++h) kp[2 * (static_cast<size_t>(j) * kp_stride + t) + h] = k[static_cast<size_t>(t) * ks + 2 * j + h];
  return kp;
}

// V rows [nt][dv] (row stride vs) as vp[tp][c] = (V[2tp][c], V[2tp+1][c]), row stride vp_stride pairs; the rest of
// a block of round_up(nt, 16) positions (including the high half of the last pair when nt is odd) is NaN.
std::vector<uint16_t> v_pairs(const std::vector<uint16_t>& v, int vs, int nt, int dv, int vp_stride) {
  std::vector<uint16_t> vp(2 * static_cast<size_t>((nt + 15) / 16 * 8 + 1) * vp_stride, kNanBf16);
  for (int t = 0; t < nt; ++t)
    for (int c = 0; c < dv; ++c) vp[2 * (static_cast<size_t>(t / 2) * vp_stride + c) + t % 2] = v[static_cast<size_t>(t) * vs + c];
  return vp;
}

// got[nq][ss] against want (the scalar row kernel) within the summation-order tolerance, finite, and the column
// past nt untouched (-7). q: [nq][qs], kv: [nt][ks].
void require_scores(const char* what, Isa isa, const std::vector<uint16_t>& q, int qs, const std::vector<uint16_t>& kv,
                    int ks, const std::vector<float>& want, const std::vector<float>& got, int ss, int nq, int nt, int d,
                    int stride) {
  for (int i = 0; i < nq; ++i) {
    for (int t = 0; t < nt; ++t) {
      double mag = 0;
      for (int j = 0; j < d; ++j)
        mag += std::fabs(bf16_to_f32(q[static_cast<size_t>(i) * qs + j]) * bf16_to_f32(kv[static_cast<size_t>(t) * ks + j]));
      const float g = got[static_cast<size_t>(i) * ss + t], w = want[static_cast<size_t>(i) * ss + t];
      INFO(isa_name(isa) << " " << what << " nq=" << nq << " nt=" << nt << " d=" << d << " stride=" << stride << " at "
                         << i << "," << t);
      REQUIRE(std::isfinite(g));
      REQUIRE(std::fabs(g - w) <= kOrderTol * mag + 1e-30);
    }
    REQUIRE(got[static_cast<size_t>(i) * ss + nt] == -7.0f);  // the column past nt is untouched
  }
}

// kp_stride > 0: the pair-layout kernel qk_kpacked over K in pairs with that stride (>= round_up(nt, 16)), else the
// row kernel qk. Either way against the scalar row kernel.
void check_qk(const AttnKernels& k, int nq, int nt, int d, int kp_stride = 0) {
  const int qs = d + 3, ks = d + 5, ss = nt + 1;
  const auto q = padded(nq, d, qs, 1000 + nq * 7 + d, -1.0f, 1.0f);
  const auto kv = padded(nt, d, ks, 2000 + nt * 11 + d, -1.0f, 1.0f);
  std::vector<float> want(static_cast<size_t>(nq) * ss, -7.0f), got = want;
  qk_bf16_scalar({q.data(), kv.data(), want.data(), qs, ks, ss, nq, nt, d});
  if (kp_stride > 0) {
    const auto kp = k_pairs(kv, ks, nt, d, kp_stride);
    QkPackedParams pp{q.data(), kp.data(), got.data(), qs, kp_stride, ss, nq, nt, d};
    pp.prefetch = kv.data();  // a prefetch hint changes nothing in the result
    pp.prefetch_bytes = static_cast<int64_t>(kv.size()) * 2;
    k.qk_kpacked(pp);
  } else {
    k.qk({q.data(), kv.data(), got.data(), qs, ks, ss, nq, nt, d});
  }
  require_scores(kp_stride ? "qk_kpacked" : "qk", k.isa, q, qs, kv, ks, want, got, ss, nq, nt, d, kp_stride);
}

// qk_qpacked over K rows (the rows past nt and the columns past d NaN) with Q^T packed by pack_qt_pairs into a
// buffer that starts out NaN (and has NaN after it): the packing must write every dword the kernels read, zero
// past the data. Also checks that layout directly.
void check_qk_qpacked(const AttnKernels& k, int nq, int nt, int d) {
  const int qs = d + 3, ks = d + 5, ss = nt + 1, cols = qt_cols(nq), rows = qt_pair_rows(d);
  const auto q = padded(nq, d, qs, 7000 + nq * 7 + d, -1.0f, 1.0f);
  const auto kv = padded(nt, d, ks, 8000 + nt * 11 + d, -1.0f, 1.0f);
  constexpr uint32_t kNanPair = uint32_t{kNanBf16} << 16 | kNanBf16;
  std::vector<uint32_t> qt(static_cast<size_t>(rows + 1) * cols, kNanPair);
  pack_qt_pairs(q.data(), qs, nq, d, qt.data());
  for (int j = 0; j < rows; ++j)
    for (int i = 0; i < cols; ++i)
      for (int h = 0; h < 2; ++h) {
        const uint16_t half = static_cast<uint16_t>(qt[static_cast<size_t>(j) * cols + i] >> (16 * h));
        const int c = 2 * j + h;
        INFO("pack_qt_pairs nq=" << nq << " d=" << d << " pair " << j << "," << i << " half " << h);
        REQUIRE(half == (i < nq && c < d ? q[static_cast<size_t>(i) * qs + c] : uint16_t{0}));
      }
  REQUIRE(qt[static_cast<size_t>(rows) * cols] == kNanPair);  // nothing written past the buffer
  std::vector<float> want(static_cast<size_t>(nq) * ss, -7.0f), got = want;
  qk_bf16_scalar({q.data(), kv.data(), want.data(), qs, ks, ss, nq, nt, d});
  QkQPackedParams pp{q.data(), qt.data(), kv.data(), got.data(), qs, cols, ks, ss, nq, nt, d};
  pp.prefetch = kv.data();  // a prefetch hint changes nothing in the result
  pp.prefetch_bytes = static_cast<int64_t>(kv.size()) * 2;
  k.qk_qpacked(pp);
  require_scores("qk_qpacked", k.isa, q, qs, kv, ks, want, got, ss, nq, nt, d, cols);
}

// vp_stride > 0: the pair-layout kernel pv_vpacked over V in pairs with that stride (>= dv), else the row kernel pv.
void check_pv(const AttnKernels& k, int nq, int nt, int dv, int vp_stride = 0) {
  const int ps = nt + 3, vs = dv + 5, os = dv + 2;
  const auto pr = padded(nq, nt, ps, 3000 + nq * 13 + nt, 0.0f, 1.0f);
  const auto v = padded(nt, dv, vs, 4000 + nt * 17 + dv, -1.0f, 1.0f);
  std::vector<float> o0(static_cast<size_t>(nq) * os);
  std::mt19937_64 rng(5000 + dv);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& x : o0) x = u(rng);
  std::vector<float> want = o0, got = o0;
  pv_bf16_scalar({pr.data(), v.data(), want.data(), ps, vs, os, nq, nt, dv});
  if (vp_stride > 0) {
    const auto vp = v_pairs(v, vs, nt, dv, vp_stride);
    PvPackedParams pp{pr.data(), vp.data(), got.data(), ps, vp_stride, os, nq, nt, dv};
    pp.prefetch = v.data();
    pp.prefetch_bytes = static_cast<int64_t>(v.size()) * 2;
    k.pv_vpacked(pp);
  } else {
    k.pv({pr.data(), v.data(), got.data(), ps, vs, os, nq, nt, dv});
  }
  for (int i = 0; i < nq; ++i) {
    for (int c = 0; c < os; ++c) {
      const size_t at = static_cast<size_t>(i) * os + c;
      INFO(isa_name(k.isa) << (vp_stride ? " pv_vpacked" : " pv") << " nq=" << nq << " nt=" << nt << " dv=" << dv
                           << " vp_stride=" << vp_stride << " at " << i << "," << c);
      if (c >= dv) {
        REQUIRE(got[at] == o0[at]);  // columns past dv are untouched
        continue;
      }
      double mag = std::fabs(o0[at]);
      for (int t = 0; t < nt; ++t)
        mag += std::fabs(bf16_to_f32(pr[static_cast<size_t>(i) * ps + t]) * bf16_to_f32(v[static_cast<size_t>(t) * vs + c]));
      REQUIRE(std::isfinite(got[at]));
      REQUIRE(std::fabs(got[at] - want[at]) <= kOrderTol * mag);
    }
  }
}

// The online-softmax step: m and alpha exactly as the scalar reference (same fp32 products, std::exp for alpha);
// each p within one bf16 ulp (the vector exp is a polynomial within ~2 ulp of fp32, which can move the bf16
// rounding of e^x by one step); l within 1e-3 relative (sums of those p in another order).
void check_softmax(const AttnKernels& k, int nq, int nt) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int ss = nt + 3, ps = nt + 5;
  std::mt19937_64 rng(6000 + nq * 31 + nt);
  std::uniform_real_distribution<float> u(-20.0f, 20.0f);
  std::vector<float> s(static_cast<size_t>(nq) * ss);
  for (auto& x : s) x = u(rng);
  std::vector<int> lo(nq), hi(nq);
  std::vector<float> m0(nq), l0(nq);
  for (int i = 0; i < nq; ++i) {
    switch (i % 5) {
      case 0: lo[i] = 0; hi[i] = nt; break;                    // everything visible
      case 1: lo[i] = -5; hi[i] = nt / 2 + 1; break;           // causal cut
      case 2: lo[i] = nt / 3; hi[i] = nt + 9; break;           // sliding-window cut
      case 3: lo[i] = nt; hi[i] = nt + 4; break;               // nothing visible
      default: lo[i] = nt / 2; hi[i] = nt / 2 + 1; break;      // one position
    }
    m0[i] = i % 3 == 0 ? kNegInf : u(rng) * 0.3f;
    l0[i] = i % 3 == 0 ? 0.0f : 1.0f + static_cast<float>(i);
  }
  auto run = [&](void (*fn)(const SoftmaxParams&), std::vector<uint16_t>& pr, std::vector<float>& m, std::vector<float>& l,
                 std::vector<float>& alpha) {
    std::vector<float> sc = s;
    pr.assign(static_cast<size_t>(nq) * ps, kNanBf16);
    m = m0;
    l = l0;
    alpha.assign(nq, -1.0f);
    fn({sc.data(), pr.data(), lo.data(), hi.data(), m.data(), l.data(), alpha.data(), ss, ps, nq, nt, 0.37f});
  };
  std::vector<uint16_t> pw, pg;
  std::vector<float> mw, lw, aw, mg, lg, ag;
  run(softmax_f32_scalar, pw, mw, lw, aw);
  run(k.softmax, pg, mg, lg, ag);
  for (int i = 0; i < nq; ++i) {
    INFO(isa_name(k.isa) << " softmax nq=" << nq << " nt=" << nt << " row " << i);
    REQUIRE(mg[i] == mw[i]);
    REQUIRE(ag[i] == aw[i]);
    REQUIRE(std::fabs(lg[i] - lw[i]) <= 1e-3 * std::fabs(lw[i]));
    for (int t = 0; t < ps; ++t) {
      const size_t at = static_cast<size_t>(i) * ps + t;
      if (t >= nt) {
        REQUIRE(pg[at] == kNanBf16);  // untouched past nt
        continue;
      }
      const float w = bf16_to_f32(pw[at]), g = bf16_to_f32(pg[at]);
      REQUIRE(std::fabs(g - w) <= std::fabs(w) * (1.0f / 128.0f));
    }
  }
}

// Runs check(kernels) for every ISA this CPU supports; returns how many ran.
template <typename Check>
int for_each_supported(Check check) {
  int ran = 0;
  for (Isa isa : kAllIsas)
    if (const AttnKernels* k = kernels_for(isa)) {
      check(*k);
      ++ran;
    }
  return ran;
}

}  // namespace

TEST_CASE("attention kernels match the scalar reference on every ISA this CPU has", "[attn][kernels]") {
  const std::string report = isa_report();
  std::printf("%s\n", report.c_str());
  WARN(report);
  int tested = 0;
  for (Isa isa : kAllIsas) {
    const AttnKernels* k = kernels_for(isa);
    if (!k) {
      REQUIRE_FALSE(cpu_supports(isa));
      continue;
    }
    ++tested;
    for (int nq : {1, 3, 9, 16, 17, 64})  // 9 and 16: the AVX-512 few-rows path (Q packed, K broadcast)
      for (int nt : {1, 2, 7, 16, 33, 64, kMaxBlockRows})
        for (int d : {1, 8, 31, 72, 128, 576}) check_qk(*k, nq, nt, d);
    for (int nq : {1, 3, 17, 64})
      for (int nt : {1, 2, 7, 33, 64, kMaxBlockRows})
        for (int dv : {1, 16, 40, 128, 512}) check_pv(*k, nq, nt, dv);
    for (int nq : {1, 3, 17, 64})
      for (int nt : {1, 2, 7, 33, 64, kMaxBlockRows}) check_softmax(*k, nq, nt);
  }
  REQUIRE(tested >= 1);
}

// The pair-layout kernels (K / V read straight from a KvRowLayout::kPairs cache block) on every ISA this CPU has
// (AMX: 16+ query rows go to tiles, with B loaded from the block where it is complete and from zero-padded scratch
// for the last partial k step). Positions past nt hold NaN; strides are the tightest a block allows and wider ones.
TEST_CASE("pair-layout attention kernels match the scalar reference on every ISA this CPU has", "[attn][kernels]") {
  const int tested = for_each_supported([](const AttnKernels& k) {
    for (int nq : {1, 3, 8, 16, 17, 64})
      for (int nt : {1, 17, 31, 47, 64, kMaxBlockRows}) {
        const int block = (nt + 15) / 16 * 16;
        for (int d : {2, 18, 128, 146})
          for (int stride : {block, block + 32}) check_qk(k, nq, nt, d, stride);
        for (int dv : {1, 2, 18, 40, 128})
          for (int stride : {dv, dv + 5}) check_pv(k, nq, nt, dv, stride);
      }
  });
  REQUIRE(tested >= 1);
}

// The few-query-rows kernel over K rows with Q^T pre-packed (MLA decode: 16 heads, rows of 576; AMX: the K rows
// are the A tiles, partial token groups and the k step past d from zero-padded scratch, 1 to 4 token tiles per B).
TEST_CASE("Q-packed attention score kernels match the scalar reference on every ISA this CPU has", "[attn][kernels]") {
  const int tested = for_each_supported([](const AttnKernels& k) {
    for (int nq : {1, 3, 9, 16, 17})
      for (int nt : {1, 15, 16, 33, 64, 100, kMaxBlockRows})
        for (int d : {1, 32, 65, 130, 576}) check_qk_qpacked(k, nq, nt, d);
  });
  REQUIRE(tested >= 1);
}

// pack_v (V rows -> pairs) is exact: every ISA gives the scalar bits, zero past dv and in the odd last row's high
// half, reads nothing past nt x dv (NaN there) and writes nothing past its pair rows (NaN sentinels stay).
TEST_CASE("V pair packing equals the scalar packing on every ISA this CPU has", "[attn][kernels]") {
  const int tested = for_each_supported([](const AttnKernels& k) {
    for (int nt : {1, 2, 7, 33, 64, kMaxBlockRows})
      for (int dv : {1, 15, 16, 40, 512, 513}) {
        const int c16 = (dv + 15) / 16 * 16, vs = dv + 7, tp = (nt + 1) / 2;
        std::vector<uint16_t> v = padded(nt, dv, vs, static_cast<uint64_t>(nt * 1000 + dv), -2.0f, 2.0f);
        std::vector<uint32_t> want((tp + 1) * static_cast<size_t>(c16), 0x7fc07fc0u), got = want;
        pack_v_scalar(v.data(), vs, nt, dv, want.data(), c16);
        k.pack_v(v.data(), vs, nt, dv, got.data(), c16);
        INFO(isa_name(k.isa) << " nt=" << nt << " dv=" << dv);
        REQUIRE(got == want);
        for (int c = 0; c < c16; ++c) REQUIRE(want[static_cast<size_t>(tp) * c16 + c] == 0x7fc07fc0u);
        for (int j = 0; j < tp; ++j)
          for (int c = 0; c < c16; ++c) {
            const uint32_t w = want[static_cast<size_t>(j) * c16 + c];
            const uint16_t lo = c < dv ? v[static_cast<size_t>(2 * j) * vs + c] : 0;
            const uint16_t hi = c < dv && 2 * j + 1 < nt ? v[static_cast<size_t>(2 * j + 1) * vs + c] : 0;
            REQUIRE(w == (lo | static_cast<uint32_t>(hi) << 16));
          }
      }
  });
  REQUIRE(tested >= 1);
}

TEST_CASE("kernels_for refuses ISAs the CPU lacks", "[attn][kernels]") {
  for (Isa isa : kAllIsas) CHECK((kernels_for(isa) != nullptr) == cpu_supports(isa));
  CHECK(cpu_supports(Isa::kScalar));
  CHECK(cpu_supports(best_isa()));
}

TEST_CASE("the arithmetic peak is measured for every ISA this CPU has and refused for the others", "[attn][peak]") {
  for (Isa isa : kAllIsas) {
    INFO(isa_name(isa));
    const double f = peak_flops(isa, 1);
    if (!cpu_supports(isa)) {
      CHECK(f == 0);
      continue;
    }
    // A real rate: finite, and above 0.1 GFLOP/s (any CPU running these tests does far more).
    CHECK(std::isfinite(f));
    CHECK(f > 1e8);
  }
  CHECK(peak_flops(Isa::kScalar, 0) == 0);
}
