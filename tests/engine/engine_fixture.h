// Builds AFD engines (CPU attention + CPU FFN) and reference runs for the engine tests.
#pragma once

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "attn_cpu/cpu_attention.h"
#include "engine/engine.h"
#include "model/reference.h"
#include "moe_gpu/cpu_ffn.h"

namespace afd::test {

inline std::unique_ptr<engine::Engine> make_cpu_engine(const std::string& dir, int micro_batches, int max_batch = 32,
                                                       int64_t pool_blocks = 0) {
  auto w = load_weights<uint16_t>(dir, kWeightsAll, false);
  attn::CpuAttnOptions ao;
  ao.threads = 2;
  ao.block_size = 16;
  ao.pool_blocks = pool_blocks ? pool_blocks : 512;
  ao.max_seqs = 64;
  engine::EngineOptions eo;
  eo.micro_batches = micro_batches;
  eo.scheduler.max_batch = max_batch;
  eo.scheduler.max_step_tokens = 64;  // small, so prompts are prefilled in several chunks
  return std::make_unique<engine::Engine>(std::make_unique<attn::CpuAttention>(w, ao), std::make_unique<CpuFfn>(w),
                                          eo);
}

// Greedy continuation by the float32 reference forward.
inline std::vector<int32_t> reference_greedy(const ReferenceModel& m, const std::vector<int32_t>& prompt, int n) {
  RefKvCache c = m.new_cache();
  auto logits = m.forward(prompt.data(), static_cast<int>(prompt.size()), c, false);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(argmax(logits.data(), m.config().vocab_size));
    if (i + 1 < n) logits = m.forward(&out.back(), 1, c, false);
  }
  return out;
}

// The prompts of a fixture's expected.json cases.
inline std::vector<std::vector<int32_t>> fixture_prompts(const std::string& dir) {
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& c : nlohmann::json::parse(std::ifstream(dir + "/expected.json"))["cases"])
    prompts.push_back(c["prompt"].get<std::vector<int32_t>>());
  return prompts;
}

// Submits every prompt as one batch (greedy, n new tokens, EOS ignored), runs it to completion and returns each
// prompt's generated tokens in prompt order.
inline std::vector<std::vector<int32_t>> batch_greedy(engine::Engine& e,
                                                      const std::vector<std::vector<int32_t>>& prompts, int n) {
  std::vector<int64_t> ids;
  for (const auto& p : prompts) {
    engine::GenRequest r;
    r.prompt = p;
    r.max_new_tokens = n;
    r.ignore_eos = true;
    ids.push_back(e.submit(r));
  }
  e.run_until_idle();
  std::map<int64_t, std::vector<int32_t>> got;
  for (auto& s : e.take_finished())
    got[s->id] = std::vector<int32_t>(s->tokens.begin() + static_cast<long>(s->req.prompt.size()), s->tokens.end());
  std::vector<std::vector<int32_t>> out;
  for (int64_t id : ids) out.push_back(got[id]);
  return out;
}

// Runs all requests to completion; returns generated tokens by request id.
inline std::map<int64_t, std::vector<int32_t>> collect(engine::Engine& e) {
  e.run_until_idle();
  std::map<int64_t, std::vector<int32_t>> out;
  for (auto& s : e.take_finished())
    out[s->id] = std::vector<int32_t>(s->tokens.begin() + static_cast<long>(s->req.prompt.size()), s->tokens.end());
  return out;
}

}  // namespace afd::test
