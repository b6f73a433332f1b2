// The CPU attention half-layer (src/attn_cpu) against the float32 reference forward
// (ReferenceModel::attention_half) for every fixture architecture: DeepSeek-V3 (q_lora, interleaved RoPE, YaRN),
// its FP8 checkpoint, DeepSeek-V2-Lite (plain q_proj, complex RoPE), Qwen3-MoE (q/k norm), Mixtral (with and
// without a sliding window) and the pystdlib-moe demo model. Several sequences of different lengths share each
// micro-batch (decode, chunked prefill and new sequences mixed), unused KV rows hold NaN, inputs are random.
// GQA caches run in the default paired row layout (K/V read by the kernels without repacking) and, in their own
// test case, in the plain-rows layout.
#include <catch2/catch.hpp>

#include <cstdio>

#include "attn_harness.h"
#include "util/error.h"

using namespace afd;
using namespace afd::test;

namespace {

// Measured tolerance for ||d_cpu - d_ref|| / ||d_ref|| per sequence and step, where d = x_out - x_in is the
// attention update. The CPU path rounds to bf16 where transformers does (normed x, every projection output, RoPE
// products, q/k norms, the cached K/V or latent, P, the attention output, o_proj output, the residual sum) and
// MLA re-associates through the absorbed W_UK/W_UV (MODEL_SPEC 2.4); the reference rounds nothing. Each rounding
// adds ~2^-9 relative noise, and about 8 to 12 of them chain up (the bf16 residual add is kept small by |x| <= 0.5,
// see random_x). Measured worst case over all fixtures, scenarios and
// every option set and kernel ISA (scalar, AVX2 + f32 oneDNN, AVX-512 BF16 + bf16 oneDNN): 1.55e-2
// (dsv3_tiny batch 17 decode, pystdlib-moe at context 1040); typical 0.5-1e-2. The softmax turns bf16 noise in
// q and k (~1e-3 relative) into absolute logit noise of ~1e-3 |s|, which is why the chain ends near 1e-2 rather
// than at the ~4e-3 that adding the roundings alone would give. 3e-2 is about twice the measured worst case.
constexpr double kRelTol = 3e-2;

attn::CpuAttnOptions small_blocks() {  // many blocks and KV chunks even at short contexts; 3 workers on 2 cores
  attn::CpuAttnOptions o;
  o.threads = 3;
  o.pin_threads = false;
  o.block_size = 16;
  o.min_chunk = 16;
  o.pool_blocks = 600;
  o.max_seqs = 32;
  return o;
}
attn::CpuAttnOptions default_blocks() {
  attn::CpuAttnOptions o;
  o.threads = 2;
  o.block_size = 64;
  o.pool_blocks = 200;
  o.max_seqs = 32;
  return o;
}

attn::CpuAttnOptions avx2_f32() {  // the AVX2-only CPU path: AVX2 kernels, f32 weights in oneDNN
  attn::CpuAttnOptions o = small_blocks();
  o.isa = static_cast<int>(cpu::Isa::kAvx2);
  o.onednn_bf16 = 0;
  return o;
}

struct Scenario {
  const char* name;
  std::vector<Step> steps;
};

std::vector<Scenario> scenarios() {
  std::vector<Scenario> s;
  s.push_back({"batch 1 context 1", {{{0, 1}}, {{0, 1}}, {{0, 1}}}});
  s.push_back({"batch 3 mixed prefill and decode",
               {{{0, 97}, {1, 1}, {2, 13}}, {{0, 1}, {1, 1}, {2, 5}, {3, 17}}, {{0, 1}, {1, 1}, {2, 1}, {3, 1}}}});
  Step pre, dec;
  for (int i = 0; i < 17; ++i) {
    pre.push_back({i, 1 + (i * 7) % 23});
    dec.push_back({i, 1});
  }
  s.push_back({"batch 17 decode", {pre, dec, dec}});
  s.push_back({"context 1000+ chunked prefill and decode",
               {{{0, 400}, {1, 3}}, {{0, 400}}, {{0, 233}, {1, 1}}, {{0, 1}, {1, 1}}, {{0, 1}}}});
  return s;
}

void run_fixture(const std::string& fixture, const attn::CpuAttnOptions& opt, const char* opt_name,
                 double tol = kRelTol) {
  for (const Scenario& sc : scenarios()) {
    AttnPair pair(fixture, opt);
    const int layer = pair.config().num_layers - 1;
    CompareResult res;
    uint64_t seed = 17;
    for (const Step& st : sc.steps) pair.step(layer, st, seed++, res);
    const bool pairs = pair.cpu().cache().layout().row_layout == attn::KvRowLayout::kPairs;
    std::printf("  %-16s %-8s %-42s layer %d: worst rel %.3e (%d tokens, kernels %s, KV %s, oneDNN %s)\n",
                fixture.c_str(), opt_name, sc.name, layer, res.worst_rel, res.tokens,
                cpu::isa_name(pair.cpu().kernel_isa()), pairs ? "pairs" : "rows", pair.cpu().onednn_info().c_str());
    INFO(fixture << " " << opt_name << " " << sc.name);
    // GQA caches hold K/V in pairs unless kv_pairs = 0; MLA caches are always rows.
    CHECK(pairs == (!pair.config().is_mla() && opt.kv_pairs != 0));
    CHECK(res.finite);
    CHECK(res.worst_rel < tol);
  }
}

}  // namespace

TEST_CASE("attention half matches the reference: dsv3_tiny", "[attn][half]") {
  run_fixture("dsv3_tiny", small_blocks(), "small");
  run_fixture("dsv3_tiny", default_blocks(), "default");
}
TEST_CASE("attention half matches the reference: dsv2lite_tiny", "[attn][half]") {
  run_fixture("dsv2lite_tiny", small_blocks(), "small");
  run_fixture("dsv2lite_tiny", default_blocks(), "default");
}
TEST_CASE("attention half matches the reference: dsv3_fp8_tiny", "[attn][half]") {
  run_fixture("dsv3_fp8_tiny", small_blocks(), "small");
}
TEST_CASE("attention half matches the reference: qwen3moe_tiny", "[attn][half]") {
  run_fixture("qwen3moe_tiny", small_blocks(), "small");
  run_fixture("qwen3moe_tiny", default_blocks(), "default");
}
TEST_CASE("attention half matches the reference: mixtral_tiny", "[attn][half]") {
  run_fixture("mixtral_tiny", small_blocks(), "small");
}
TEST_CASE("attention half matches the reference: mixtral_swa_tiny", "[attn][half]") {
  run_fixture("mixtral_swa_tiny", small_blocks(), "small");
  run_fixture("mixtral_swa_tiny", default_blocks(), "default");
}
TEST_CASE("attention half matches the reference: pystdlib-moe", "[attn][half]") {
  run_fixture("pystdlib-moe", small_blocks(), "small");
}

TEST_CASE("attention half with AVX2 kernels and f32 oneDNN weights matches the reference", "[attn][half]") {
  if (!cpu::cpu_supports(cpu::Isa::kAvx2)) {
    WARN("this CPU has no AVX2: the AVX2 attention path is not tested here");
    return;
  }
  for (const std::string& f : all_fixtures()) run_fixture(f, avx2_f32(), "avx2-f32");
}

// The GQA fixtures with the plain-rows KV layout (kv_pairs = 0; the cases above run the default paired layout),
// on the best kernels, the AVX2 kernels and the scalar kernels.
TEST_CASE("attention half with the rows KV layout matches the reference (GQA fixtures)", "[attn][half]") {
  for (const std::string f : {"qwen3moe_tiny", "mixtral_tiny", "mixtral_swa_tiny"}) {
    attn::CpuAttnOptions small = small_blocks(), dflt = default_blocks(), scalar = small_blocks();
    small.kv_pairs = dflt.kv_pairs = scalar.kv_pairs = 0;
    scalar.isa = static_cast<int>(cpu::Isa::kScalar);
    run_fixture(f, small, "rows");
    run_fixture(f, dflt, "rows-def");
    run_fixture(f, scalar, "rows-sc");
    if (cpu::cpu_supports(cpu::Isa::kAvx2)) {
      attn::CpuAttnOptions avx2 = avx2_f32();
      avx2.kv_pairs = 0;
      run_fixture(f, avx2, "rows-av2");
    }
  }
}

// The fp8 KV cache (kv_cache.h): K and V rounded to e4m3 (3 mantissa bits, relative error up to 2^-4) before
// attention reads them; the exact read path is tested bit for bit in test_kv_fp8.cpp. Here the whole half-layer,
// including the fp8 write path, against the float32 reference. Measured worst case over the fixtures and
// scenarios (AVX-512 BF16 kernels): 9.2e-2 (mixtral_tiny, batch 3), typically 3-6e-2 (the e4m3 rounding of
// every K and V element, ~3.6% RMS); the bound is about twice that, and a wrong read or write gives ~1.
constexpr double kFp8RelTol = 0.2;
TEST_CASE("attention half with an fp8 KV cache stays near the reference", "[attn][half][fp8]") {
  for (const std::string& f : all_fixtures()) {
    attn::CpuAttnOptions o = small_blocks();
    o.kv_dtype = attn::KvDtype::kFp8E4m3;
    run_fixture(f, o, "fp8-kv", kFp8RelTol);
  }
}

// A fine work split: up to 64 KV chunks per (sequence, tile) at min_chunk 16, so the merge combines many partials.
TEST_CASE("attention half with many work items per worker matches the reference", "[attn][half]") {
  attn::CpuAttnOptions o = small_blocks();
  o.items_per_worker = 64;
  for (const std::string f : {"dsv2lite_tiny", "qwen3moe_tiny", "mixtral_swa_tiny"}) run_fixture(f, o, "fine");
}

TEST_CASE("attention half with the scalar kernels matches the reference", "[attn][half]") {
  attn::CpuAttnOptions o = small_blocks();
  o.isa = static_cast<int>(cpu::Isa::kScalar);
  run_fixture("dsv3_tiny", o, "scalar");
  run_fixture("qwen3moe_tiny", o, "scalar");
  run_fixture("mixtral_swa_tiny", o, "scalar");
}

TEST_CASE("every layer of a fixture matches the reference", "[attn][half]") {
  for (const std::string fixture : {"dsv3_tiny", "mixtral_tiny"}) {
    const auto& cfg = fixture_weights(fixture).ref->cfg;
    for (int layer = 0; layer < cfg.num_layers; ++layer) {
      AttnPair pair(fixture, small_blocks());
      CompareResult res;
      pair.step(layer, {{0, 30}, {1, 2}}, 101, res);
      pair.step(layer, {{0, 1}, {1, 1}, {2, 9}}, 102, res);
      INFO(fixture << " layer " << layer);
      CHECK(res.finite);
      CHECK(res.worst_rel < kRelTol);
    }
  }
}

// A decode step after a prefill of n tokens against the last row of a prefill of n + 1 tokens (same inputs).
// With the KV range in one chunk (min_chunk larger than the context) the two are bit-identical: every row is
// computed the same way whatever else shares its micro-batch. With flash-decoding splits the chunk boundaries
// depend on the micro-batch, and P = bf16(e^(s - m)) is rounded against each chunk's running max m, so the
// rounding of P differs: measured rel <= 5.3e-3 over the fixtures; bound 1e-2.
TEST_CASE("a decode step after a prefill matches a longer prefill", "[attn][half]") {
  for (const std::string& fixture : all_fixtures()) {
    const ModelConfig& c = fixture_weights(fixture).ref->cfg;
    const int h = c.hidden_size, n = 130, layer = c.num_layers - 1;
    const std::vector<uint16_t> x = random_x(n + 1, h, 7);
    auto run = [&](std::vector<int> chunks, int min_chunk) {
      attn::CpuAttnOptions o = small_blocks();
      o.min_chunk = min_chunk;
      attn::CpuAttention a(fixture_weights(fixture).bf16, o);
      a.cache().fill(kNanBf16);
      const int slot = a.kv().open();
      REQUIRE(a.kv().reserve(slot, n + 1));
      std::vector<uint16_t> out = x;
      int done = 0;
      for (int len : chunks) {
        const int32_t start[2] = {0, len}, cached = done;
        AttnBatch b{len, 1, &slot, start, &cached};
        a.attn_half(layer, b, out.data() + static_cast<size_t>(done) * h);
        done += len;
      }
      return out;
    };
    auto last_row_rel = [&](const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
      std::vector<float> da(h), db(h);
      for (int i = 0; i < h; ++i) {
        const size_t at = static_cast<size_t>(n) * h + i;
        da[i] = bf16_to_f32(a[at]) - bf16_to_f32(x[at]);
        db[i] = bf16_to_f32(b[at]) - bf16_to_f32(x[at]);
      }
      return rel_l2(da.data(), db.data(), h);
    };
    const auto whole = run({n + 1}, 16), stepped = run({n, 1}, 16);
    const auto whole1 = run({n + 1}, 1 << 20), stepped1 = run({n, 1}, 1 << 20);
    const double rel = last_row_rel(stepped, whole);
    std::printf("  %-16s decode-after-prefill vs longer prefill: rel %.3e split, %.3e unsplit\n", fixture.c_str(), rel,
                last_row_rel(stepped1, whole1));
    INFO(fixture);
    CHECK(std::equal(whole.begin(), whole.begin() + static_cast<size_t>(n) * h, stepped.begin()));
    CHECK(rel < 1e-2);
    CHECK(whole1 == stepped1);
  }
}
