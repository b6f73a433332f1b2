// The micro-batch pipeline with tagging backends: every activation row carries (slot, position, layer, side) so
// that a row delivered to the wrong micro-batch, a skipped or repeated layer, or a dependency edge taken out of
// order shows up as a wrong tag; sleeps stand in for work so that the overlap M = 2 buys is measurable.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "../test_util.h"
#include "engine/engine.h"
#include "util/error.h"
#include "util/numeric.h"

using namespace afd;

namespace {

constexpr float kAttn = 1, kFfn = 2, kEmbed = 3;

ModelConfig tiny_config(int layers) {
  ModelConfig c = load_model_config(test::fixture_model("qwen3moe_tiny") + "/config.json");
  c.num_layers = layers;
  return c;
}

// M micro-batches, at most 16 sequences and 40 tokens per step (prefill chunks of longer prompts).
engine::EngineOptions small_options(int M) {
  engine::EngineOptions eo;
  eo.micro_batches = M;
  eo.scheduler.max_batch = 16;
  eo.scheduler.max_step_tokens = 40;
  return eo;
}

void put_tag(uint16_t* row, float slot, float pos, float layer, float side) {
  row[0] = f32_to_bf16(slot);
  row[1] = f32_to_bf16(pos);
  row[2] = f32_to_bf16(layer);
  row[3] = f32_to_bf16(side);
}

struct Tags {
  std::mutex mu;
  int errors = 0;
  std::string first_error;
  void check(const uint16_t* row, float slot, float pos, float layer, float side, const char* where) {
    const float got[4] = {bf16_to_f32(row[0]), bf16_to_f32(row[1]), bf16_to_f32(row[2]), bf16_to_f32(row[3])};
    if (got[0] == slot && got[1] == pos && got[2] == layer && got[3] == side) return;
    std::lock_guard<std::mutex> l(mu);
    if (errors++ == 0)
      first_error = std::string(where) + ": expected (" + std::to_string(slot) + "," + std::to_string(pos) + "," +
                    std::to_string(layer) + "," + std::to_string(side) + ") got (" + std::to_string(got[0]) + "," +
                    std::to_string(got[1]) + "," + std::to_string(got[2]) + "," + std::to_string(got[3]) + ")";
  }
};

class CountingKv : public KvManager {
 public:
  int open() override { return next_++; }
  bool reserve(int, int) override { return true; }
  void close(int) override {}
  int64_t free_blocks() const override { return 1000; }
  int64_t total_blocks() const override { return 1000; }
  int block_size() const override { return 64; }

 private:
  int next_ = 0;
};

// Rows are tagged with positions modulo 200 (exact in bf16).
class TagAttn : public AttnBackend {
 public:
  TagAttn(ModelConfig c, Tags& t, int sleep_us) : c_(std::move(c)), t_(t), sleep_us_(sleep_us) {}
  std::string name() const override { return "tag-attn"; }
  const ModelConfig& config() const override { return c_; }
  KvManager& kv() override { return kv_; }
  void embed(const int32_t*, int n, uint16_t* x) override {
    for (int i = 0; i < n; ++i) put_tag(x + static_cast<size_t>(i) * c_.hidden_size, -1, -1, -1, kEmbed);
  }
  std::atomic<int> fail_at{-1};  // the attn_half call (counted from 0) that throws; -1: none
  std::atomic<int> calls{0};
  void attn_half(int layer, const AttnBatch& b, uint16_t* x) override {
    if (calls++ == fail_at) throw Error("the attention side went away");
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    for (int s = 0; s < b.num_seqs; ++s)
      for (int t = b.token_start[s]; t < b.token_start[s + 1]; ++t) {
        uint16_t* row = x + static_cast<size_t>(t) * c_.hidden_size;
        const float pos = static_cast<float>((b.cached_len[s] + t - b.token_start[s]) % 200);
        if (layer == 0)
          t_.check(row, -1, -1, -1, kEmbed, "attention layer 0 input");
        else
          t_.check(row, static_cast<float>(b.seq_slot[s]), pos, static_cast<float>(layer - 1), kFfn, "attention input");
        put_tag(row, static_cast<float>(b.seq_slot[s]), pos, static_cast<float>(layer), kAttn);
      }
  }

 private:
  ModelConfig c_;
  Tags& t_;
  CountingKv kv_;
  int sleep_us_;
};

class TagFfn : public FfnBackend {
 public:
  TagFfn(ModelConfig c, Tags& t, int sleep_us, int head_us = 0)
      : c_(std::move(c)), t_(t), sleep_us_(sleep_us), head_us_(head_us) {}
  std::string name() const override { return "tag-ffn"; }
  const ModelConfig& config() const override { return c_; }
  std::atomic<int> fail_at{-1};  // the ffn_half call (counted from 0) that throws; -1: none
  std::atomic<int> calls{0};
  void ffn_half(int layer, uint16_t* x, int n) override {
    if (calls++ == fail_at) throw Error("the FFN side went away");
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    for (int i = 0; i < n; ++i) {
      uint16_t* row = x + static_cast<size_t>(i) * c_.hidden_size;
      const float slot = bf16_to_f32(row[0]), pos = bf16_to_f32(row[1]);
      t_.check(row, slot, pos, static_cast<float>(layer), kAttn, "FFN input");
      put_tag(row, slot, pos, static_cast<float>(layer), kFfn);
    }
  }
  void logits(const uint16_t*, int, float*) override {}
  // Two "GPUs", the second always busier, so the step statistics must show an imbalance of 1.5.
  std::vector<double> last_device_busy_seconds() const override { return {1e-4, 2e-4}; }
  // The next token is a function of the row's tag, so the engine's bookkeeping can be checked too.
  void sample(const uint16_t* x, int n, const SamplingParams*, const uint64_t*, int32_t* out) override {
    std::this_thread::sleep_for(std::chrono::microseconds(head_us_));
    for (int i = 0; i < n; ++i) {
      const uint16_t* row = x + static_cast<size_t>(i) * c_.hidden_size;
      t_.check(row, bf16_to_f32(row[0]), bf16_to_f32(row[1]), static_cast<float>(c_.num_layers - 1), kFfn, "head input");
      out[i] = static_cast<int32_t>(bf16_to_f32(row[1]));  // the position of the last token
    }
  }

 private:
  ModelConfig c_;
  Tags& t_;
  int sleep_us_, head_us_;
};

struct Run {
  double overlap;
  std::vector<double> gpu_busy;
  std::string summary;
  int errors;
  std::string first_error;
  std::map<int64_t, std::vector<int32_t>> out;
  std::map<int64_t, size_t> prompt_len;
};

Run run(int M, int sleep_us, int layers, int head_us = 0, int new_tokens = 6) {
  Tags tags;
  const ModelConfig c = tiny_config(layers);
  const engine::EngineOptions eo = small_options(M);
  engine::Engine e(std::make_unique<TagAttn>(c, tags, sleep_us), std::make_unique<TagFfn>(c, tags, sleep_us, head_us),
                   eo);
  Run r;
  for (int len : {1, 7, 33, 2, 90, 5, 17}) {
    engine::GenRequest q;
    q.prompt.assign(len, 3);
    q.max_new_tokens = new_tokens;
    q.ignore_eos = true;
    r.prompt_len[e.submit(q)] = len;
  }
  e.run_until_idle();
  for (auto& s : e.take_finished())
    r.out[s->id] = std::vector<int32_t>(s->tokens.begin() + static_cast<long>(s->req.prompt.size()), s->tokens.end());
  r.overlap = e.totals().overlap();
  r.gpu_busy = e.totals().gpu_busy_s;
  r.summary = e.totals().summary();
  r.errors = tags.errors;
  r.first_error = tags.first_error;
  return r;
}

}  // namespace

TEST_CASE("pipeline delivers every row to its own micro-batch and layer, for M = 1..4", "[pipeline]") {
  for (int M : {1, 2, 3, 4}) {
    INFO("M=" << M);
    const Run r = run(M, 0, 5);
    INFO(r.first_error);
    CHECK(r.errors == 0);
    REQUIRE(r.out.size() == 7);
    for (const auto& [id, toks] : r.out) {
      // Token i of a request was sampled at position prompt_len - 1 + i (the fake head returns the position).
      REQUIRE(toks.size() == 6);
      for (size_t i = 0; i < toks.size(); ++i) CHECK(toks[i] == static_cast<int32_t>((r.prompt_len.at(id) - 1 + i) % 200));
    }
  }
}

TEST_CASE("step statistics sum each FFN GPU's busy time and report their imbalance", "[pipeline]") {
  const Run r = run(2, 0, 3);
  REQUIRE(r.gpu_busy.size() == 2);
  CHECK(r.gpu_busy[1] == Approx(2 * r.gpu_busy[0]));
  CHECK(r.gpu_busy[0] > 0);
  CHECK(engine::gpu_imbalance(r.gpu_busy) == Approx(4.0 / 3.0));
  CHECK_THAT(r.summary, Catch::Contains("imbalance max/mean 1.33"));
}

TEST_CASE("two micro-batches overlap the two sides, one does not", "[pipeline]") {
  const Run one = run(1, 2000, 4), two = run(2, 2000, 4);
  INFO("overlap M=1 " << one.overlap << ", M=2 " << two.overlap);
  CHECK(one.errors == 0);
  CHECK(two.errors == 0);
  CHECK(one.overlap < 0.6);  // strictly alternating sides: each busy about half the step
  CHECK(two.overlap > one.overlap + 0.15);
}

TEST_CASE("lanes run across step boundaries: the LM head of one overlaps the next step of another", "[pipeline]") {
  // Attention, FFN and the head each take one unit per layer and lane; the FFN side (2 layers + the head per lane)
  // is the busier one. With M = 2, a pipeline that joins the lanes at every step boundary keeps the FFN side busy 6
  // of 7 units per step (0.86: the first layer's attention of the first lane runs alone); lanes that start their
  // next step as soon as their own has finished keep it busy throughout (1.0 up to thread hand-offs).
  // Decode-heavy, so most rounds are steady.
  const Run r = run(2, 3000, 2, 3000, 24);
  INFO("overlap " << r.overlap << ": " << r.summary);
  CHECK(r.errors == 0);
  CHECK(r.overlap > 0.91);
  for (const auto& [id, toks] : r.out) {
    REQUIRE(toks.size() == 24);
    for (size_t i = 0; i < toks.size(); ++i) CHECK(toks[i] == static_cast<int32_t>((r.prompt_len.at(id) - 1 + i) % 200));
  }
}

namespace {
// A tagging attention side that supports the synthetic KV fill and records its calls.
class FillingTagAttn : public TagAttn {
 public:
  using TagAttn::TagAttn;
  void fill_synthetic(int slot, int len, uint64_t) override { fills.emplace_back(slot, len); }
  std::vector<std::pair<int, int>> fills;
};
}  // namespace

TEST_CASE("synthetic_context fills prompt_len - 1 positions and runs only the last prompt token", "[pipeline]") {
  Tags tags;
  const ModelConfig c = tiny_config(3);
  const engine::EngineOptions eo = small_options(2);
  auto attn = std::make_shared<FillingTagAttn>(c, tags, 0);
  engine::Engine e(attn, std::make_unique<TagFfn>(c, tags, 0), eo);
  std::map<int64_t, int> len_of;
  for (int len : {90, 1, 33}) {
    engine::GenRequest q;
    q.prompt.assign(len, 3);
    q.max_new_tokens = 4;
    q.ignore_eos = true;
    q.synthetic_context = true;
    len_of[e.submit(q)] = len;
  }
  REQUIRE(e.step());
  CHECK(e.last_step().tokens == 3);  // one token per sequence, not 90 + 1 + 33 (nor a 40-token prefill chunk)
  e.run_until_idle();
  // Filled: prompt_len - 1 positions of each sequence with more than one prompt token.
  std::vector<int> filled;
  for (const auto& f : attn->fills) filled.push_back(f.second);
  std::sort(filled.begin(), filled.end());
  CHECK(filled == std::vector<int>{32, 89});
  CHECK(tags.errors == 0);
  INFO(tags.first_error);
  for (auto& s : e.take_finished()) {
    // TagFfn samples the position of the last token: the first one is the last prompt position.
    const int len = len_of.at(s->id);
    const std::vector<int32_t> out(s->tokens.begin() + len, s->tokens.end());
    CHECK(out == std::vector<int32_t>{len - 1, len % 200, (len + 1) % 200, (len + 2) % 200});
  }

  // A backend without the fill rejects such a request with the reason, and runs the others.
  engine::Engine plain(std::make_unique<TagAttn>(c, tags, 0), std::make_unique<TagFfn>(c, tags, 0), eo);
  engine::GenRequest q;
  q.prompt.assign(10, 3);
  q.max_new_tokens = 2;
  q.synthetic_context = true;
  const int64_t rejected = plain.submit(q);
  q.synthetic_context = false;
  const int64_t ran = plain.submit(q);
  plain.run_until_idle();
  for (auto& s : plain.take_finished()) {
    INFO(s->error);
    if (s->id == rejected) {
      CHECK(s->finish == engine::FinishReason::kRejected);
      CHECK(s->error.find("not supported") != std::string::npos);
    } else {
      CHECK(s->id == ran);
      CHECK(s->finish == engine::FinishReason::kLength);
    }
  }
  q.synthetic_context = true;
  q.score_only = true;
  CHECK_THROWS_WITH(plain.submit(q), Catch::Matchers::Contains("synthetic_context"));
}

TEST_CASE("a side that fails mid-round fails the sequences in flight and leaves the engine usable", "[pipeline]") {
  for (const auto& [attn_side, fail_at] : {std::pair{false, 0}, {false, 5}, {false, 13}, {true, 0}, {true, 7}}) {
    INFO((attn_side ? "attention" : "FFN") << " fails at call " << fail_at);
    Tags tags;
    const ModelConfig c = tiny_config(3);
    const engine::EngineOptions eo = small_options(2);
    auto ffn = std::make_shared<TagFfn>(c, tags, 200);
    auto attn = std::make_shared<TagAttn>(c, tags, 200);
    (attn_side ? attn->fail_at : ffn->fail_at) = fail_at;
    engine::Engine e(attn, ffn, eo);
    engine::GenRequest q;
    q.prompt.assign(5, 3);
    q.max_new_tokens = 8;
    q.ignore_eos = true;
    for (int i = 0; i < 6; ++i) e.submit(q);
    bool threw = false;
    try {
      e.run_until_idle();
    } catch (const std::exception& ex) {
      threw = true;
      CHECK_THAT(ex.what(), Catch::Contains(attn_side ? "attention side went away" : "FFN side went away"));
    }
    CHECK(threw);
    // What the failure left behind ends: either failed with the reason or (not in flight then) runs to the end.
    e.run_until_idle();
    int failed = 0;
    for (auto& s : e.take_finished()) {
      if (s->finish == engine::FinishReason::kFailed) {
        ++failed;
        CHECK_THAT(s->error, Catch::Contains("went away"));
      } else {
        CHECK(s->finish == engine::FinishReason::kLength);
      }
    }
    CHECK(failed >= 1);
    // New requests after the failure run normally, on the same backends.
    const int64_t id = e.submit(q);
    e.run_until_idle();
    auto after = e.take_finished();
    REQUIRE(after.size() == 1);
    CHECK(after[0]->id == id);
    CHECK(after[0]->finish == engine::FinishReason::kLength);
    CHECK(after[0]->generated == 8);
    CHECK(tags.errors == 0);
  }
}
