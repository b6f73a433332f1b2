// Runs CpuAttention and the float32 ReferenceModel::attention_half side by side over a script of micro-batches
// (sequences that persist across steps, each step adding tokens to some of them) and measures how far apart the
// attention updates (x_out - x_in) are.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "attn_cpu/cpu_attention.h"
#include "model/reference.h"
#include "util/numeric.h"

namespace afd::test {

constexpr uint16_t kNanBf16 = 0x7fc0;

// A two-layer cache layout for the cache tests.
inline attn::KvLayout kv_layout(int kv_heads, int k_dim, int v_dim, int block = 16,
                                attn::KvRowLayout rows = attn::KvRowLayout::kRows,
                                attn::KvDtype dtype = attn::KvDtype::kBf16) {
  attn::KvLayout lay;
  lay.layers = 2;
  lay.kv_heads = kv_heads;
  lay.k_dim = k_dim;
  lay.v_dim = v_dim;
  lay.block_size = block;
  lay.row_layout = rows;
  lay.dtype = dtype;
  return lay;
}

// Weights are loaded once per fixture and shared by the tests of this executable.
struct FixtureWeights {
  std::shared_ptr<const RefWeights> ref;
  std::shared_ptr<const Bf16Weights> bf16;
};
inline const FixtureWeights& fixture_weights(const std::string& name) {
  static std::map<std::string, FixtureWeights> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const std::string dir = fixture_model(name);
    FixtureWeights w{load_weights<float>(dir, kWeightsAll, false), load_weights<uint16_t>(dir, kWeightsEmbed | kWeightsAttn, false)};
    it = cache.emplace(name, std::move(w)).first;
  }
  return it->second;
}

inline std::vector<std::string> all_fixtures() {
  return {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "dsv3_fp8_tiny", "mixtral_tiny", "mixtral_swa_tiny", "pystdlib-moe"};
}

struct StepSeq {
  int seq;  // sequence id in the script (a new id opens a slot)
  int n;    // tokens added this step
};
using Step = std::vector<StepSeq>;

struct CompareResult {
  double worst_rel = 0;   // the largest per-sequence ||d_cpu - d_ref|| / ||d_ref|| over all steps
  double batch_rel = 0;   // the same over the whole last micro-batch
  bool finite = true;
  int tokens = 0;
};

// x inputs: uniform in [-0.5, 0.5], bf16-rounded, never zero, distinct per (step, token). The update d does not
// depend on the scale of x (RMSNorm comes first), but the bf16 residual add x + d rounds at the scale of |x|;
// a small |x| keeps that mandated rounding from hiding the errors of the attention path itself.
inline std::vector<uint16_t> random_x(int n, int hidden, uint64_t seed) {
  auto f = random_floats(static_cast<size_t>(n) * hidden, seed, -0.5f, 0.5f);
  std::vector<uint16_t> x(f.size());
  for (size_t i = 0; i < f.size(); ++i) x[i] = f32_to_bf16(f[i] == 0.0f ? 0.125f : f[i]);
  return x;
}

class AttnPair {
 public:
  AttnPair(const std::string& fixture, const attn::CpuAttnOptions& opt)
      : w_(fixture_weights(fixture)), ref_(w_.ref), cpu_(w_.bf16, opt) {
    cpu_.cache().fill(kNanBf16);  // unused KV rows are NaN: a stray read poisons the output
  }
  attn::CpuAttention& cpu() { return cpu_; }
  const ModelConfig& config() const { return ref_.config(); }

  // Runs one micro-batch on `layer` through both; returns the CPU output and checks it against the reference.
  std::vector<uint16_t> step(int layer, const Step& st, uint64_t seed, CompareResult& res) {
    const int h = config().hidden_size;
    std::vector<int32_t> slots, start{0}, cached;
    for (const StepSeq& s : st) {
      if (!seqs_.count(s.seq)) seqs_[s.seq] = Seq{cpu_.kv().open(), 0, ref_.new_cache()};
      Seq& q = seqs_[s.seq];
      REQUIRE(cpu_.kv().reserve(q.slot, q.len + s.n));
      slots.push_back(q.slot);
      cached.push_back(q.len);
      start.push_back(start.back() + s.n);
    }
    const int T = start.back();
    std::vector<uint16_t> x = random_x(T, h, seed), x_in = x;
    AttnBatch b{T, static_cast<int>(st.size()), slots.data(), start.data(), cached.data()};
    cpu_.attn_half(layer, b, x.data());
    double num_all = 0, den_all = 0;
    for (size_t i = 0; i < st.size(); ++i) {
      Seq& q = seqs_[st[i].seq];
      const int n = st[i].n;
      std::vector<float> xr(static_cast<size_t>(n) * h);
      for (size_t j = 0; j < xr.size(); ++j) xr[j] = bf16_to_f32(x_in[static_cast<size_t>(start[i]) * h + j]);
      std::vector<float> before = xr;
      ref_.attention_half(layer, xr.data(), n, q.ref);
      double num = 0, den = 0;
      for (size_t j = 0; j < xr.size(); ++j) {
        const size_t at = static_cast<size_t>(start[i]) * h + j;
        const double dc = static_cast<double>(bf16_to_f32(x[at])) - bf16_to_f32(x_in[at]);
        const double dr = static_cast<double>(xr[j]) - before[j];
        if (!std::isfinite(dc)) res.finite = false;
        num += (dc - dr) * (dc - dr);
        den += dr * dr;
      }
      res.worst_rel = std::max(res.worst_rel, std::sqrt(num / std::max(den, 1e-30)));
      num_all += num;
      den_all += den;
      q.len += n;
    }
    res.batch_rel = std::sqrt(num_all / std::max(den_all, 1e-30));
    res.tokens += T;
    return x;
  }

  void close(int seq) {
    cpu_.kv().close(seqs_.at(seq).slot);
    seqs_.erase(seq);
  }

 private:
  struct Seq {
    int slot, len;
    RefKvCache ref;
  };
  const FixtureWeights& w_;
  ReferenceModel ref_;
  attn::CpuAttention cpu_;
  std::map<int, Seq> seqs_;
};

}  // namespace afd::test
