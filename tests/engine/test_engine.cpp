// The AFD engine (CPU attention + CPU FFN, pipelined micro-batches, continuous batching) against the float32
// reference engine: greedy outputs, batch composition, requests joining mid-decode, cancellation, KV accounting.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine_fixture.h"

using namespace afd;


TEST_CASE("AFD engine greedy output equals the reference engine on every fixture, M = 1, 2, 3", "[engine]") {
  for (const char* name : {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "dsv3_fp8_tiny", "mixtral_tiny",
                           "mixtral_swa_tiny"}) {
    const std::string dir = test::fixture_model(name);
    ReferenceModel ref(load_ref_weights(dir, false));
    const auto prompts = test::fixture_prompts(dir);
    REQUIRE(prompts.size() >= 2);
    constexpr int kNew = 12;
    for (int M : {1, 2, 3}) {
      INFO(name << " M=" << M);
      auto e = test::make_cpu_engine(dir, M);
      test::check_against_reference(ref, prompts, test::batch_greedy(*e, prompts, kNew), kNew);
      CHECK(e->attn().kv().free_blocks() == e->attn().kv().total_blocks());
    }
  }
}

TEST_CASE("requests joining mid-decode and batch composition do not change a request's output", "[engine]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  auto solo = test::make_cpu_engine(dir, 2);
  std::mt19937 rng(5);
  auto random_prompt = [&](int len) {
    std::vector<int32_t> p{0};
    for (int i = 1; i < len; ++i) p.push_back(static_cast<int32_t>(200 + rng() % 3000));
    return p;
  };
  const std::vector<int32_t> probe = random_prompt(37);
  engine::GenRequest r;
  r.prompt = probe;
  r.max_new_tokens = 20;
  r.ignore_eos = true;
  const int64_t id = solo->submit(r);
  const auto alone = test::collect(*solo)[id];
  REQUIRE(alone.size() == 20);

  auto busy = test::make_cpu_engine(dir, 3);
  std::vector<int64_t> others;
  for (int len : {5, 90, 17, 1, 63}) {
    engine::GenRequest o = r;
    o.prompt = random_prompt(len);
    o.max_new_tokens = 7 + len % 11;
    others.push_back(busy->submit(o));
  }
  for (int i = 0; i < 3; ++i) busy->step();  // the probe joins while the others are mid-way
  const int64_t pid = busy->submit(r);
  for (int i = 0; i < 2; ++i) busy->step();
  engine::GenRequest late = r;
  late.prompt = random_prompt(41);
  busy->submit(late);
  const auto all = test::collect(*busy);
  CHECK(all.at(pid) == alone);
  CHECK(busy->attn().kv().free_blocks() == busy->attn().kv().total_blocks());
}

TEST_CASE("cancellation, rejection and a full KV pool are handled without losing blocks", "[engine]") {
  const std::string dir = test::fixture_model("qwen3moe_tiny");
  auto e = test::make_cpu_engine(dir, 2, 8, /*pool_blocks=*/6);  // 6 blocks of 16 positions
  engine::GenRequest big;
  big.prompt.assign(120, 7);
  big.max_new_tokens = 10;  // 130 positions > 96 in the pool: rejected
  const int64_t rejected = e->submit(big);
  engine::GenRequest a;
  a.prompt.assign(40, 9);
  a.max_new_tokens = 30;  // 70 positions: 5 blocks
  const int64_t first = e->submit(a);
  const int64_t second = e->submit(a);  // must wait for the first to finish
  e->step();
  e->step();
  e->cancel(first);
  e->run_until_idle();
  std::map<int64_t, engine::FinishReason> why;
  for (auto& s : e->take_finished()) why[s->id] = s->finish;
  CHECK(why[rejected] == engine::FinishReason::kRejected);
  CHECK(why[first] == engine::FinishReason::kCancelled);
  CHECK(why[second] == engine::FinishReason::kLength);
  CHECK(e->attn().kv().free_blocks() == e->attn().kv().total_blocks());
  engine::GenRequest bad;
  bad.prompt = {1, 2, 999999};
  CHECK_THROWS_WITH(e->submit(bad), Catch::Matchers::Contains("outside the vocabulary"));
}

TEST_CASE("engine totals count every step and token of a batch", "[engine]") {
  const std::string dir = test::fixture_model("dsv3_tiny");
  auto e = test::make_cpu_engine(dir, 2);
  const auto prompts = test::fixture_prompts(dir);
  const auto got = test::batch_greedy(*e, prompts, 5);
  REQUIRE(got.size() == prompts.size());
  size_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    CHECK(got[i].size() == 5);
    tokens += prompts[i].size() + 4;  // every prompt position and all but the last generated token went through
  }
  INFO(e->totals().summary());
  CHECK(e->totals().steps >= 5);
  CHECK(e->totals().tokens == static_cast<int64_t>(tokens));
  CHECK(e->totals().attn_s > 0);
  CHECK(e->totals().ffn_s > 0);
  CHECK(e->totals().gpu_busy_s.empty());  // the CPU FFN reports no GPUs
}

// A lane can hold more decoding sequences than its share of max_step_tokens (lanes are balanced by cost, not count):
// 64 requests over 3 lanes of 21 tokens each put 22 in one lane. Its prefills must still progress, so every request
// has its first token long before any request has all of its own (with prefills starved behind decodes, the 22nd
// request would start only after a lane-mate finished).
TEST_CASE("prefill chunks are not starved by a lane full of decodes", "[engine]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  auto e = test::make_cpu_engine(dir, /*micro_batches=*/3, /*max_batch=*/64, /*pool_blocks=*/256);
  std::map<int64_t, int> first_step, done_step;
  int step = 0;
  for (int i = 0; i < 64; ++i) {
    engine::GenRequest r = test::greedy({0, 200 + i, 300 + i}, 24);
    e->submit(r, [&](int64_t id, int32_t t, engine::FinishReason f) {
      if (t >= 0 && !first_step.count(id)) first_step[id] = step;
      if (f != engine::FinishReason::kNone) done_step[id] = step;
    });
  }
  while (e->step()) ++step;
  REQUIRE(first_step.size() == 64);
  REQUIRE(done_step.size() == 64);
  int last_first = 0, first_done = 1 << 30;
  for (const auto& [id, s] : first_step) last_first = std::max(last_first, s);
  for (const auto& [id, s] : done_step) first_done = std::min(first_done, s);
  INFO("last first token at step " << last_first << ", first request done at step " << first_done);
  CHECK(last_first < first_done);
  CHECK(last_first <= 6);
  CHECK(e->attn().kv().free_blocks() == e->attn().kv().total_blocks());
}
