// afd-bench-attn-cpu: the CPU attention core against the machine's own ceilings, measured in the same run.
//   1. host read bandwidth (all workers, pinned), GB/s
//   2. oneDNN matmul rate (bf16 weights/activations where oneDNN has bf16 matmul, else f32), TFLOP/s
//      (1 and 2 are measured before the cases and again after them; the ratios use the larger of each)
//   3. GQA decode attention, Qwen3-30B-A3B shapes (32 q heads, 4 kv heads, dim 128), batch 64, context 4096:
//      KV GB/s and the fraction of the read bandwidth (target >= 0.8)
//   4. MLA absorbed decode, DeepSeek-V3 (128 heads) and V2-Lite (16 heads), latent 512 + rope 64, same batch and
//      context: TFLOP/s (2 * (576 + 512) FLOP per head and cached token) and the fraction of the matmul rate
//      (target >= 0.5 with AMX)
// Only the attention core is timed in 3 and 4 (paged KV read, scores, softmax, P.V, chunk merge), not the
// projections, which are oneDNN matmuls measured by 2.
// The GQA cache uses the paired row layout by default (KvRowLayout::kPairs: the kernels read K/V without repacking);
// --kv-layout rows measures the plain-rows layout instead (K/V repacked per block by the AVX-512 / AMX kernels).
// Usage: afd-bench-attn-cpu --help (every flag explained).
#include <algorithm>
#include <functional>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sched.h>

#include <CLI/CLI.hpp>
#include <oneapi/dnnl/dnnl.hpp>

#include "cpu/dnnl_linear.h"
#include "attn_cpu/kv_cache.h"
#include "attn_cpu/matmul.h"
#include "attn_cpu/paged_attention.h"
#include "attn_cpu/thread_pool.h"
#include "cpu/attn_kernels.h"
#include "cpu/attn_pack.h"
#include "cpu/peak.h"
#include "util/numeric.h"

using namespace afd;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  int threads = 0;
  int batch = 64;
  int ctx = 4096;
  int iters = 5;
  int isa = -1;
  int mla = 1;  // 0: skip the MLA cases
  bool gqa_pairs = true;  // --kv-layout pairs|rows (GQA; MLA is always rows)
  int block = 64;         // --block: KV positions per cache block
  attn::KvDtype dtype = attn::KvDtype::kBf16;  // --kv-dtype bf16|fp8_e4m3
  int steps = 0;  // --steps 1: the per-step costs of one MLA block (step_costs)
  std::string cases = "gqa,v3,v2lite";  // --cases: which decode cases run
  int items_per_worker = attn::PagedAttention::kItemsPerWorker;  // --items-per-worker
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// p[i] = value(x) for a cheap xorshift stream x per part, in parallel (the same values whatever the pool's timing).
template <typename T, typename Value>
void fill_parallel(attn::ThreadPool& pool, T* p, int64_t n, uint64_t seed, Value value) {
  const int parts = pool.size() * 4;
  pool.parallel_for(parts, [&](int part, int) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(part) * 0xbf58476d1ce4e5b9ull + 1;
    for (int64_t i = n * part / parts; i < n * (part + 1) / parts; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      p[i] = value(s);
    }
  });
}

// n bf16 values in [-1, 1), never zero.
void fill_random(attn::ThreadPool& pool, uint16_t* p, int64_t n, uint64_t seed) {
  fill_parallel(pool, p, n, seed, [](uint64_t s) {
    const float f = static_cast<float>(static_cast<int64_t>(s >> 40) - (int64_t{1} << 23)) / static_cast<float>(1 << 23);
    return f32_to_bf16(f == 0.0f ? 0.5f : f);
  });
}

// An fp8 pool: e4m3 codes of magnitude below 2 (never NaN, never 0), random sign.
void fill_random_fp8(attn::ThreadPool& pool, uint8_t* p, int64_t n, uint64_t seed) {
  fill_parallel(pool, p, n, seed,
                [](uint64_t s) { return static_cast<uint8_t>(((s >> 32) % 0x3f + 1) | ((s >> 48) & 0x80)); });
}

// Multi-thread read bandwidth over a buffer much larger than the caches: best of 5 passes.
double read_bandwidth(attn::ThreadPool& pool, int64_t bytes) {
  const int64_t n = bytes / 8;
  std::vector<uint64_t> buf(n);
  const int parts = pool.size();
  pool.parallel_for(parts, [&](int part, int) {  // first touch by the worker that later reads it
    for (int64_t i = n * part / parts; i < n * (part + 1) / parts; ++i) buf[i] = static_cast<uint64_t>(i);
  });
  std::vector<uint64_t> sink(parts);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.parallel_for(parts, [&](int part, int) {
      uint64_t a[8] = {};
      const int64_t lo = n * part / parts, hi = n * (part + 1) / parts;
      int64_t i = lo;
      for (; i + 8 <= hi; i += 8)
        for (int j = 0; j < 8; ++j) a[j] += buf[i + j];
      for (; i < hi; ++i) a[0] += buf[i];
      sink[part] = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
    });
    best = std::max(best, static_cast<double>(n) * 8 / seconds_since(t0) / 1e9);
  }
  volatile uint64_t keep = sink[0];
  (void)keep;
  return best;
}

// oneDNN matmul rate, best of 19 (after a warm-up), on the bf16 path when oneDNN has it (else f32): TFLOP/s and the implementation.
double gemm_rate(int m, int k, int n, std::string& impl, bool& bf16) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  bf16 = cpu::dnnl_has_bf16_matmul();
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const dt t = bf16 ? dt::bf16 : dt::f32;
  dnnl::memory::desc a({m, k}, t, tag::ab), b_any({k, n}, t, tag::any), c({m, n}, dt::f32, tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b_any, c), eng);
  impl = pd.impl_info_str();
  dnnl::memory am(a, eng), bm(pd.weights_desc(), eng), cm(c, eng), bplain({{k, n}, t, tag::ab}, eng);
  const size_t es = bf16 ? 2 : 4;
  std::memset(am.get_data_handle(), 0x3c, a.get_size());  // small finite values in both types
  std::memset(bplain.get_data_handle(), 0x3c, static_cast<size_t>(k) * n * es);
  dnnl::reorder(bplain, bm).execute(s, bplain, bm);
  dnnl::matmul prim(pd);
  double best = 0;
  for (int rep = 0; rep < 20; ++rep) {
    const auto t0 = Clock::now();
    prim.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
    if (rep > 0) best = std::max(best, 2.0 * m * k * n / seconds_since(t0) / 1e12);
  }
  return best;
}

struct CoreResult {
  double ms = 0;
  double kv_bytes = 0;
  double flops = 0;
};

struct ProjResult {
  int m = 0;
  double ms = 0, weight_bytes = 0, flops = 0;
  std::string impl;
};

// The attention side's projections as the engine runs them (attn::Matmul, the engine's weight dtype), at
// DeepSeek-V3's o_proj shape (k = 128 x 128, n = 7168: 117M weights) for decode-sized row counts: best of `iters`
// calls after a warm-up per m.
std::vector<ProjResult> projections(int iters, bool fixed_m) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const int k = 16384, n = 7168;
  const bool bf16 = attn::projection_bf16_default();
  std::vector<uint16_t> w(static_cast<size_t>(k) * n);
  for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(static_cast<float>(i % 255) / 255.0f - 0.5f);
  attn::MatmulCache cache;
  attn::Matmul mm(eng, cache, 1, k, n, w.data(), bf16, fixed_m);
  std::vector<ProjResult> r;
  for (int m : {1, 4, 16, 64, 256}) {
    std::vector<uint16_t> x(static_cast<size_t>(m) * k, f32_to_bf16(0.25f));
    std::vector<float> y(static_cast<size_t>(m) * n);
    mm.run(s, x.data(), m, y.data());
    double best = 1e30;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = Clock::now();
      mm.run(s, x.data(), m, y.data());
      best = std::min(best, seconds_since(t0));
    }
    r.push_back({m, best * 1e3, static_cast<double>(k) * n * (bf16 ? 2 : 4), 2.0 * m * k * n, mm.impl()});
  }
  return r;
}

// Decode attention over batch sequences of ctx cached positions each (the new token included), one layer.
// Batch, context, block, dtype and the work split come from the command line (a); iters per case.
CoreResult decode_core(attn::ThreadPool& pool, const cpu::AttnKernels& k, const Args& a, int kv_heads,
                       int heads_per_kv, int qk_dim, int v_dim, bool mla, bool pairs, int iters) {
  const int batch = a.batch, ctx = a.ctx, block = a.block;
  const attn::KvDtype dtype = a.dtype;
  attn::KvLayout lay;
  lay.layers = 1;
  lay.kv_heads = kv_heads;
  lay.k_dim = qk_dim;
  lay.v_dim = mla ? 0 : v_dim;
  lay.block_size = block;
  lay.row_layout = pairs ? attn::KvRowLayout::kPairs : attn::KvRowLayout::kRows;
  lay.dtype = dtype;
  const int64_t blocks_per_seq = (ctx + lay.block_size - 1) / lay.block_size;
  attn::PagedKvCache cache(lay, blocks_per_seq * batch, batch);
  // Random finite values in every element of the pool: any position in either layout holds a plausible value.
  if (dtype == attn::KvDtype::kBf16)
    fill_random(pool, cache.k_rows(0, 0, 0), cache.total_blocks() * lay.layer_block_elems(), 1);
  else
    fill_random_fp8(pool, cache.k_bytes(0, 0, 0), cache.total_blocks() * lay.layer_block_elems(), 1);
  std::vector<int32_t> slots(batch), start(batch + 1), cached(batch, ctx - 1);
  for (int s = 0; s < batch; ++s) {
    slots[s] = cache.open();
    cache.reserve(slots[s], ctx);
    start[s] = s;
  }
  start[batch] = batch;
  const int H = kv_heads * heads_per_kv;
  std::vector<uint16_t> q(static_cast<size_t>(batch) * H * qk_dim), o(static_cast<size_t>(batch) * H * v_dim);
  fill_random(pool, q.data(), static_cast<int64_t>(q.size()), 2);
  attn::AttnCoreParams p;
  p.num_seqs = batch;
  p.seq_slot = slots.data();
  p.token_start = start.data();
  p.cached_len = cached.data();
  p.heads_per_kv = heads_per_kv;
  p.qk_dim = qk_dim;
  p.v_dim = v_dim;
  p.v_in_k = mla;
  p.q = q.data();
  p.o = o.data();
  p.scale = 1.0f / 16.0f;
  attn::PagedAttention core(cache, k, pool.size(), 256, a.items_per_worker);
  core.run(p, pool);  // warm-up
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    core.run(p, pool);
    t.push_back(seconds_since(t0));
  }
  CoreResult r;
  r.ms = median(t) * 1e3;
  r.kv_bytes = static_cast<double>(batch) * ctx * kv_heads * (qk_dim + (mla ? 0 : v_dim)) * lay.elem_bytes();
  r.flops = 2.0 * batch * H * static_cast<double>(ctx) * (qk_dim + v_dim);
  return r;
}


// Each step of one absorbed-MLA decode block (the work of PagedAttention::run_item for `heads` query rows against
// `nt` cached positions of 576 = 512 latent + 64 rope), timed alone on one thread with everything in cache: ns per
// call, median of 7 runs of `reps` calls. Set against the time the block's bytes take at this thread's share of the
// read bandwidth (bw / threads), it says whether a decode step is bound by memory or by this per-block work.
void step_costs(const cpu::AttnKernels& k, int heads, int nt, double bw_per_thread) {
  constexpr int kD = 576, kDv = 512;
  const int reps = 4000;
  std::vector<uint16_t> q(static_cast<size_t>(heads) * kD), kr(static_cast<size_t>(nt) * kD), pb(static_cast<size_t>(heads) * nt);
  std::vector<uint8_t> k8(static_cast<size_t>(nt) * kD);
  std::vector<uint32_t> qt(static_cast<size_t>(cpu::qt_pair_rows(kD)) * cpu::qt_cols(heads));
  std::vector<float> s(static_cast<size_t>(heads) * nt), s0, acc(static_cast<size_t>(heads) * kDv, 0.0f);
  uint64_t x = 88172645463325252ull;
  auto rnd = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (auto& v : q) v = f32_to_bf16(static_cast<float>(rnd() % 2001 + 1) / 1000.0f - 1.0f);
  for (auto& v : kr) v = f32_to_bf16(static_cast<float>(rnd() % 2001 + 1) / 1000.0f - 1.0f);
  for (auto& v : k8) v = static_cast<uint8_t>((rnd() % 0x3f + 1) | (rnd() & 0x80));
  cpu::pack_qt_pairs(q.data(), kD, heads, kD, qt.data());
  std::vector<int> lo(heads, 0), hi(heads, nt);
  std::vector<float> m(heads), l(heads), alpha(heads);
  const cpu::QkQPackedParams qq{q.data(), qt.data(), kr.data(), s.data(), kD, cpu::qt_cols(heads), kD, nt, heads, nt, kD};
  const cpu::QkParams qr{q.data(), kr.data(), s.data(), kD, kD, nt, heads, nt, kD};
  k.qk_qpacked(qq);
  s0 = s;
  auto softmax = [&] {
    std::copy(s0.begin(), s0.end(), s.begin());
    std::fill(m.begin(), m.end(), 0.5f);  // a max in range: the step rescales like a mid-sequence block
    std::fill(l.begin(), l.end(), 1.0f);
    k.softmax({s.data(), pb.data(), lo.data(), hi.data(), m.data(), l.data(), alpha.data(), nt, nt, heads, nt, 0.0625f});
  };
  auto rescale = [&] {
    for (int r = 0; r < heads; ++r) {
      float* a = acc.data() + static_cast<int64_t>(r) * kDv;
      for (int c = 0; c < kDv; ++c) a[c] *= 0.999f;
    }
  };
  auto pv = [&] { k.pv({pb.data(), kr.data(), acc.data(), nt, kD, kDv, heads, nt, kDv}); };
  auto conv = [&] { k.fp8_to_bf16(k8.data(), kr.data(), static_cast<int64_t>(nt) * kD); };
  auto timed = [&](const char* name, auto&& f) {
    std::vector<double> t;
    for (int run = 0; run < 7; ++run) {
      const auto t0 = Clock::now();
      for (int i = 0; i < reps; ++i) f();
      t.push_back(seconds_since(t0) / reps * 1e9);
    }
    const double ns = median(t);
    std::printf("step     %-34s %8.0f ns per block\n", name, ns);
    return ns;
  };
  std::printf("steps of one MLA block: %d query rows x %d positions x (576 + 512), kernels %s, one thread, hot caches\n",
              heads, nt, cpu::isa_name(k.isa));
  const double a = timed("qk (S^T = K . Q^T, qk_qpacked)", [&] { k.qk_qpacked(qq); });
  timed("qk (K rows, plain qk)", [&] { k.qk(qr); });
  const double b = timed("softmax (incl. 1 copy of S)", softmax);
  const double c = timed("rescale of the accumulators", rescale);
  const double d = timed("pv (pack V pairs + P . V)", pv);
  if (k.isa >= cpu::Isa::kAvx512Bf16) {  // the two halves of pv: pack_v_pairs is the AVX-512 one on both tables
    std::vector<uint32_t> vp(static_cast<size_t>((nt + 1) / 2) * kDv + 16);
    timed("  pack V pairs alone", [&] { cpu::pack_v_pairs(kr.data(), kD, nt, kDv, vp.data(), kDv); });
    timed("  P . V from packed V (pv_vpacked)",
          [&] { k.pv_vpacked({pb.data(), reinterpret_cast<const uint16_t*>(vp.data()), acc.data(), nt, kDv, kDv, heads, nt, kDv}); });
  }
  const double e = timed("fp8 -> bf16 of the block", conv);
  const double all = timed("qk + softmax + rescale + pv", [&] {
    k.qk_qpacked(qq);
    softmax();
    rescale();
    pv();
  });
  const double mem16 = static_cast<double>(nt) * kD * 2 / bw_per_thread * 1e9, mem8 = mem16 / 2;
  std::printf("step     sum of the parts %.0f ns, chained %.0f ns; the block's bytes at this thread's share of the read"
              " bandwidth: bf16 %.0f ns, fp8 %.0f ns (+ conversion %.0f ns)\n",
              a + b + c + d, all, mem16, mem8, e);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"afd-bench-attn-cpu: the CPU attention core (GQA and absorbed-MLA decode over the paged KV cache) "
               "against this machine's read bandwidth and oneDNN matmul rate, measured in the same run"};
  // A flag given twice takes its last value (bench/run_attn_ab_gpu.sh passes defaults before the caller's flags).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--threads", a.threads, "Attention worker threads (default: every CPU this process may run on)");
  app.add_option("--batch", a.batch, "Sequences decoding one token each")->check(CLI::PositiveNumber);
  app.add_option("--ctx", a.ctx, "Cached positions per sequence, the new token included")->check(CLI::PositiveNumber);
  app.add_option("--iters", a.iters, "Timed calls per case (the median is reported; MLA uses half)")
      ->check(CLI::PositiveNumber);
  std::string isa_name;
  app.add_option("--isa", isa_name, "Kernels to run: scalar, avx2, avx512 or amx (default: the best this CPU has)")
      ->check(CLI::IsMember({"scalar", "avx2", "avx512", "amx"}));
  app.add_option("--mla", a.mla, "0: leave out the MLA cases (as --cases gqa)")->check(CLI::Range(0, 1));
  app.add_option("--cases", a.cases,
                 "Cases to run, comma-separated: gqa, v3, v2lite (decode attention; the default), proj (the "
                 "attention side's projections through attn::Matmul at V3's o_proj shape, 1-256 rows)");
  std::string layout = "pairs";
  app.add_option("--kv-layout", layout,
                 "GQA cache row layout: pairs (what the kernels read, no repacking) or rows (repacked per block); "
                 "MLA is always rows")
      ->check(CLI::IsMember({"pairs", "rows"}));
  app.add_option("--block", a.block, "KV positions per cache block")->check(CLI::Range(1, cpu::kMaxBlockRows));
  std::string dtype = "bf16";
  app.add_option("--kv-dtype", dtype, "KV cache elements: bf16 or fp8_e4m3 (half the bytes, converted per block)")
      ->check(CLI::IsMember({"bf16", "fp8_e4m3", "fp8"}));
  app.add_option("--steps", a.steps,
                 "1: also time each step of one absorbed-MLA block alone (one thread, hot caches) against the time "
                 "its bytes take at one thread's share of the read bandwidth")
      ->check(CLI::Range(0, 1));
  app.add_option("--items-per-worker", a.items_per_worker,
                 "Work items a call aims for per worker when it splits KV ranges (default: the library's)")
      ->check(CLI::Range(1, 1024));
  std::string proj_layout = "auto";
  app.add_option("--proj-layout", proj_layout,
                 "proj case: auto (the engine's choice on this CPU), fixed (blocked weights, a fixed-M primitive per "
                 "row count) or runtime (one run-time-M primitive over its own layout), for A/B runs")
      ->check(CLI::IsMember({"auto", "fixed", "runtime"}));
  CLI11_PARSE(app, argc, argv);
  a.gqa_pairs = layout == "pairs";
  a.dtype = attn::parse_kv_dtype(dtype, "--kv-dtype");
  a.isa = isa_name.empty() ? -1 : isa_name == "scalar" ? 0 : isa_name == "avx2" ? 1 : isa_name == "avx512" ? 2 : 3;
  if (!a.mla) a.cases = "gqa";
  if (a.threads <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof(set), &set);
    a.threads = CPU_COUNT(&set);
  }
  const cpu::Isa isa = a.isa >= 0 ? static_cast<cpu::Isa>(a.isa) : cpu::best_isa();
  const cpu::AttnKernels* k = cpu::kernels_for(isa);
  if (!k) {
    std::fprintf(stderr, "this CPU cannot run the %s kernels\n", cpu::isa_name(isa));
    return 2;
  }
  // Before the pool exists: its pinned workers would share the cores with the peak's threads.
  const double peak = cpu::peak_flops(isa, a.threads);
  attn::ThreadPool pool(a.threads, true);
  std::printf("afd-bench-attn-cpu: %d threads, kernels %s, oneDNN ISA %s, batch %d, context %d, KV block %d, KV %s\n",
              a.threads, cpu::isa_name(isa), cpu::dnnl_isa_name().c_str(), a.batch, a.ctx, a.block,
              attn::kv_dtype_name(a.dtype));

  // The ceilings are measured before the cases and again after them, and every ratio is taken against the larger
  // of the two: a host whose speed dips while one of them runs (others' load, clocks) then cannot flatter a ratio.
  struct Ceilings {
    double bw = 0, gemm = 0;
  };
  auto measure_ceilings = [&](const char* when) {
    Ceilings c;
    c.bw = read_bandwidth(pool, int64_t{1} << 30);
    std::printf("ceiling  host read bandwidth (%d threads, 1 GiB, %s): %.1f GB/s\n", a.threads, when, c.bw);
    std::string impl;
    bool bf16 = false;
    for (int m : {64, 256, 1024}) {
      std::string im;
      const double r = gemm_rate(m, 4096, 4096, im, bf16);
      std::printf("ceiling  oneDNN %s matmul m=%d k=n=4096 (%s): %.3f TFLOP/s (%s)\n", bf16 ? "bf16" : "f32", m, when, r,
                  im.c_str());
      if (r > c.gemm) {
        c.gemm = r;
        impl = im;
      }
    }
    std::printf("ceiling  oneDNN matmul best (%s): %.3f TFLOP/s (%s)\n", when, c.gemm, impl.c_str());
    return c;
  };
  const Ceilings before = measure_ceilings("before the cases");
  std::printf("ceiling  arithmetic peak of the %s kernels' instruction (%d threads): %.3f TFLOP/s\n", cpu::isa_name(isa),
              a.threads, peak / 1e12);
  std::vector<std::function<void(double bw, double gemm)>> report;  // printed once both ceilings are known

  auto wanted = [&](const std::string& name) { return ("," + a.cases + ",").find("," + name + ",") != std::string::npos; };
  if (wanted("gqa")) {
    const CoreResult g = decode_core(pool, *k, a, 4, 8, 128, 128, false, a.gqa_pairs, a.iters);
    const char* layout_name = a.gqa_pairs ? "pairs" : "rows";
    report.push_back([g, layout_name](double bw, double) {
      std::printf("GQA decode  (Qwen3-30B-A3B: 32 q / 4 kv heads, d 128, KV %s) %8.2f ms  KV %.2f GB/s = %.2f of read "
                  "bandwidth  (%.3f TFLOP/s)\n",
                  layout_name, g.ms, g.kv_bytes / g.ms / 1e6, g.kv_bytes / g.ms / 1e6 / bw, g.flops / g.ms / 1e9);
    });
  }
  if (a.steps) {
    for (int nt : {64, 256}) step_costs(*k, 16, nt, before.bw * 1e9 / a.threads);
    step_costs(*k, 128, 64, before.bw * 1e9 / a.threads);
  }
  for (const auto& [name, heads] : {std::pair<const char*, int>{"DeepSeek-V3", 128}, {"DeepSeek-V2-Lite", 16}}) {
    if (!wanted(heads == 128 ? "v3" : "v2lite")) continue;
    const CoreResult m = decode_core(pool, *k, a, 1, heads, 576, 512, true, false, std::max(1, a.iters / 2));
    report.push_back([m, name = name, heads = heads](double bw, double gemm) {
      std::printf("MLA decode  (%-16s: %3d heads, 512 + 64)      %8.2f ms  %.3f TFLOP/s = %.2f of the matmul rate"
                  "  (KV %.2f GB/s = %.2f of read bandwidth)\n",
                  name, heads, m.ms, m.flops / m.ms / 1e9, m.flops / m.ms / 1e9 / gemm, m.kv_bytes / m.ms / 1e6,
                  m.kv_bytes / m.ms / 1e6 / bw);
    });
  }
  if (wanted("proj")) {
    const bool fixed_m = proj_layout == "auto" ? attn::fixed_m_by_default() : proj_layout == "fixed";
    const std::vector<ProjResult> pr = projections(std::max(3, a.iters), fixed_m);
    report.push_back([pr](double bw, double gemm) {
      for (const ProjResult& p : pr)
        std::printf("projection (V3 o_proj 16384 -> 7168, %-22s) m=%4d %8.2f ms  weights %.1f GB/s = %.2f of read "
                    "bandwidth  %.3f TFLOP/s = %.2f of the matmul rate\n",
                    p.impl.c_str(), p.m, p.ms, p.weight_bytes / p.ms / 1e6, p.weight_bytes / p.ms / 1e6 / bw,
                    p.flops / p.ms / 1e9, p.flops / p.ms / 1e9 / gemm);
    });
  }
  const Ceilings after = measure_ceilings("after the cases");
  const double bw = std::max(before.bw, after.bw), gemm = std::max(before.gemm, after.gemm);
  std::printf("ceiling  used for the ratios below (the larger of before / after): read %.1f GB/s, matmul %.3f TFLOP/s\n",
              bw, gemm);
  for (const auto& r : report) r(bw, gemm);
  return 0;
}
