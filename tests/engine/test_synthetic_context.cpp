// GenRequest::synthetic_context on the real CPU engine: the KV cache is filled instead of prefilled, decode runs on
// it with finite logits, reads it (the fill changes the logits), and leaves the same blocks in use as a real
// prefill of the same prompts.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine_fixture.h"

using namespace afd;

namespace {
engine::GenRequest request(int len, bool synthetic) {
  engine::GenRequest r;
  for (int i = 0; i < len; ++i) r.prompt.push_back(5 + (i * 37) % 200);
  r.max_new_tokens = 6;
  r.ignore_eos = true;
  r.all_logits = true;
  r.synthetic_context = synthetic;
  return r;
}
}  // namespace

TEST_CASE("decode after a synthetic KV fill runs with finite logits, MLA and GQA", "[engine]") {
  for (const char* name : {"dsv2lite_tiny", "qwen3moe_tiny"}) {
    INFO(name);
    const std::string dir = test::fixture_model(name);
    auto real = test::make_cpu_engine(dir, 2);
    auto syn = test::make_cpu_engine(dir, 2);
    const int V = syn->config().vocab_size;
    const std::vector<int> lens = {100, 45, 1};
    std::vector<int64_t> real_ids, syn_ids;
    for (int len : lens) {
      real_ids.push_back(real->submit(request(len, false)));
      syn_ids.push_back(syn->submit(request(len, true)));
    }
    REQUIRE(syn->step());
    CHECK(syn->last_step().tokens == 3);  // only the last prompt token of each
    REQUIRE(real->step());                 // admits the same sequences: the same blocks are reserved
    CHECK(syn->attn().kv().free_blocks() == real->attn().kv().free_blocks());
    CHECK(syn->attn().kv().free_blocks() < syn->attn().kv().total_blocks());

    std::map<int64_t, std::unique_ptr<engine::Sequence>> rs, ss;
    real->run_until_idle();
    syn->run_until_idle();
    for (auto& s : real->take_finished()) rs[s->id] = std::move(s);
    for (auto& s : syn->take_finished()) ss[s->id] = std::move(s);
    for (size_t i = 0; i < lens.size(); ++i) {
      INFO("prompt length " << lens[i]);
      const engine::Sequence& s = *ss.at(syn_ids[i]);
      const engine::Sequence& r = *rs.at(real_ids[i]);
      REQUIRE(s.finish == engine::FinishReason::kLength);
      CHECK(s.generated == 6);
      // Rows from the last prompt position on: 1 + 5 fed decode tokens (the real run also has the prompt's rows).
      REQUIRE(s.logits.size() == static_cast<size_t>(6) * V);
      REQUIRE(r.logits.size() == static_cast<size_t>(lens[i] + 5) * V);
      bool finite = true;
      for (float v : s.logits) finite = finite && std::isfinite(v);
      CHECK(finite);
      // The last prompt position's logits: identical for a 1-token prompt (nothing to fill), different when the
      // random cache is attended over.
      const std::vector<float> s0(s.logits.begin(), s.logits.begin() + V);
      const std::vector<float> r0(r.logits.end() - static_cast<long>(6) * V, r.logits.end() - static_cast<long>(5) * V);
      if (lens[i] == 1)
        CHECK(s0 == r0);
      else
        CHECK(s0 != r0);
    }
    CHECK(syn->attn().kv().free_blocks() == syn->attn().kv().total_blocks());
  }
}
