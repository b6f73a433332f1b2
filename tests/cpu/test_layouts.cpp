// The same weights in the other layouts a loader must accept give the same logits: the fused 3-D expert tensors
// transformers 5 writes with save_original_format=False (bf16 and fp8), and config.json's rope_parameters form.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "../checkpoint_edit.h"
#include "../test_util.h"
#include "model/reference.h"
#include "util/numeric.h"

using namespace afd;
namespace fs = std::filesystem;

namespace {
std::vector<float> logits_of(const std::string& dir) {
  ReferenceModel m(load_ref_weights(dir, false));
  std::vector<int32_t> ids;
  for (int i = 0; i < 13; ++i) ids.push_back((i * 37 + 5) % m.config().vocab_size);
  RefKvCache c = m.new_cache();
  return m.forward(ids.data(), static_cast<int>(ids.size()), c, true);
}
}  // namespace

TEST_CASE("fused 3-D expert tensors load like per-expert ones", "[layouts]") {
  for (const char* name : {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "dsv3_fp8_tiny", "mixtral_tiny"}) {
    INFO(name);
    test::TempDir dir;
    const std::string src = test::fixture_model(name);
    const ModelConfig cfg = load_model_config(src + "/config.json");
    test::rewrite_checkpoint(src, dir.path("m"), [&](auto& ts) {
      const bool mixtral = cfg.arch == Arch::kMixtral;  // block_sparse_moe.experts.E.w1/w3/w2 -> mlp.experts.*
      for (int l = 0; l < cfg.num_layers; ++l) {
        if (!cfg.is_moe_layer(l)) continue;
        const std::string p = "model.layers." + std::to_string(l);
        if (mixtral) {
          test::find_tensor(ts, p + ".block_sparse_moe.gate.weight")->name = p + ".mlp.gate.weight";
          test::fuse_experts(ts, p + ".block_sparse_moe", p + ".mlp", cfg.n_routed_experts, "w1", "w3", "w2");
        } else {
          test::fuse_experts(ts, p + ".mlp", p + ".mlp", cfg.n_routed_experts, "gate_proj", "up_proj", "down_proj");
        }
      }
      REQUIRE(test::find_tensor(ts, "model.layers.1.mlp.experts.gate_up_proj"));
      REQUIRE_FALSE(test::find_tensor(ts, "model.layers.1.mlp.experts.0.gate_proj.weight"));
    });
    if (cfg.fp8) {  // the fp8 copy also carries the MTP layer; the rewrite keeps it, and it must be skipped
      REQUIRE(st::Checkpoint(dir.path("m")).find("model.layers." + std::to_string(cfg.num_layers) +
                                                  ".eh_proj.weight"));
    }
    const auto a = logits_of(src), b = logits_of(dir.path("m"));
    REQUIRE(a.size() == b.size());
    CHECK(test::rel_l2(b.data(), a.data(), a.size()) == 0.0);
  }
}

TEST_CASE("a checkpoint whose config uses rope_parameters gives the same logits", "[layouts]") {
  test::TempDir dir;
  const std::string src = test::fixture_model("dsv2lite_tiny");
  fs::copy(src, dir.path("m"));
  nlohmann::json cfg = nlohmann::json::parse(test::read_text(src + "/config.json"));
  nlohmann::json rp = cfg["rope_scaling"];
  rp["rope_type"] = rp["type"];
  rp.erase("type");
  cfg.erase("rope_scaling");
  cfg["rope_parameters"] = rp;
  test::write_text(dir.path("m/config.json"), cfg.dump(2));
  const auto a = logits_of(src), b = logits_of(dir.path("m"));
  CHECK(test::rel_l2(b.data(), a.data(), a.size()) == 0.0);
}

TEST_CASE("bf16 weights are the float weights rounded once, and parts load separately", "[layouts]") {
  for (const char* name : {"dsv3_tiny", "dsv3_fp8_tiny", "mixtral_tiny"}) {
    INFO(name);
    const auto f = load_weights<float>(test::fixture_model(name), kWeightsAll, false);
    const auto b = load_weights<uint16_t>(test::fixture_model(name), kWeightsAll, false);
    auto same = [](const std::vector<float>& fv, const std::vector<uint16_t>& bv) {
      REQUIRE(fv.size() == bv.size());
      size_t bad = 0;
      for (size_t i = 0; i < fv.size(); ++i) bad += f32_to_bf16(fv[i]) != bv[i];
      return bad;
    };
    CHECK(same(f->embed, b->embed) == 0);
    CHECK(same(f->lm_head.w, b->lm_head.w) == 0);
    const int l = f->cfg.num_layers - 1;
    CHECK(same(f->attn[l].o_proj.w, b->attn[l].o_proj.w) == 0);
    CHECK(same(f->ffn[l].experts[3].down.w, b->ffn[l].experts[3].down.w) == 0);
    CHECK(same(f->ffn[l].router.w, b->ffn[l].router.w) == 0);

    const auto ffn_only = load_weights<uint16_t>(test::fixture_model(name), kWeightsFfn, false);
    CHECK(ffn_only->attn.empty());
    CHECK(ffn_only->embed.empty());
    CHECK(ffn_only->lm_head.w.empty());
    CHECK(ffn_only->ffn.size() == static_cast<size_t>(f->cfg.num_layers));
    CHECK(ffn_only->ffn[l].experts[3].down.w == b->ffn[l].experts[3].down.w);
  }
}
