// config.json parsing: the fixtures' fields, legacy and rope_parameters forms, and errors that name the field.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "model/config.h"
#include "model/rope.h"

using namespace afd;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {
json fixture_json(const std::string& name) {
  return json::parse(std::ifstream(test::fixture_model(name) + "/config.json"));
}
}  // namespace

TEST_CASE("fixture configs parse into the right architecture description", "[config]") {
  const ModelConfig v3 = load_model_config(test::fixture_model("dsv3_tiny") + "/config.json");
  CHECK(v3.arch == Arch::kDeepSeekV3);
  CHECK(v3.router == RouterKind::kSigmoidGroupTopk);
  CHECK(v3.rope_layout == RopeLayout::kInterleavedOut);
  CHECK(v3.q_lora_rank == 48);
  CHECK(v3.rope.type == "yarn");
  CHECK(v3.rope.factor == 4.0);
  CHECK(v3.first_k_dense_replace == 1);
  CHECK_FALSE(v3.is_moe_layer(0));
  CHECK(v3.is_moe_layer(1));
  CHECK(v3.routed_scaling_factor == 2.5);
  CHECK(v3.shared_intermediate() == 32);

  const ModelConfig v2 = load_model_config(test::fixture_model("dsv2lite_tiny") + "/config.json");
  CHECK(v2.arch == Arch::kDeepSeekV2);
  CHECK(v2.router == RouterKind::kSoftmaxGreedy);
  CHECK(v2.rope_layout == RopeLayout::kComplex);
  CHECK(v2.q_lora_rank == 0);
  CHECK(v2.rope.mscale_all_dim == Approx(0.707));

  const ModelConfig q3 = load_model_config(test::fixture_model("qwen3moe_tiny") + "/config.json");
  CHECK(q3.arch == Arch::kQwen3Moe);
  CHECK(q3.qk_norm);
  CHECK(q3.head_dim == 16);
  CHECK(q3.num_kv_heads == 2);
  CHECK(q3.n_routed_experts == 8);
  CHECK(q3.sliding_window == 0);
  CHECK(q3.softmax_scale() == Approx(0.25));

  const ModelConfig f8 = load_model_config(test::fixture_model("dsv3_fp8_tiny") + "/config.json");
  CHECK(f8.fp8);
  CHECK(f8.fp8_block_rows == 128);
}

TEST_CASE("rope_parameters (transformers 5) and rope_theta/rope_scaling (legacy) mean the same", "[config]") {
  json legacy = fixture_json("dsv3_tiny");
  json modern = legacy;
  json rp = modern["rope_scaling"];
  rp.erase("type");
  rp["rope_type"] = "yarn";
  rp["rope_theta"] = modern["rope_theta"];
  modern.erase("rope_scaling");
  modern.erase("rope_theta");
  modern["rope_parameters"] = rp;
  const ModelConfig a = parse_model_config(legacy, "legacy.json"), b = parse_model_config(modern, "modern.json");
  CHECK(a.rope.type == b.rope.type);
  CHECK(a.rope.theta == b.rope.theta);
  CHECK(a.rope.factor == b.rope.factor);
  CHECK(a.softmax_scale() == b.softmax_scale());
  CHECK(make_rope_table(a.rope, a.rope_dim).inv_freq == make_rope_table(b.rope, b.rope_dim).inv_freq);

  json qwen = fixture_json("qwen3moe_tiny");
  qwen.erase("rope_theta");
  qwen.erase("rope_scaling");
  qwen["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  CHECK(parse_model_config(qwen, "q.json").rope.theta == 1e6);
}

TEST_CASE("bad config.json fields are named in the error", "[config]") {
  json j = fixture_json("dsv3_tiny");
  auto expect = [](json bad, const std::string& needle) {
    CHECK_THROWS_WITH(parse_model_config(bad, "cfg.json"), Contains("cfg.json") && Contains(needle));
  };
  { json b = j; b["model_type"] = "llama4"; expect(b, "model_type"); }
  { json b = j; b.erase("hidden_size"); expect(b, "missing field hidden_size"); }
  { json b = j; b["hidden_size"] = "64"; expect(b, "hidden_size must be an integer"); }
  { json b = j; b["num_attention_heads"] = -4; expect(b, "num_attention_heads"); }
  { json b = j; b["num_experts_per_tok"] = 9; expect(b, "num_experts_per_tok"); }
  { json b = j; b["n_group"] = 3; expect(b, "n_group"); }
  { json b = j; b["topk_group"] = 5; expect(b, "topk_group"); }
  { json b = j; b["rope_scaling"]["type"] = "dynamic"; expect(b, "rope type 'dynamic'"); }
  { json b = j; b["rope_scaling"].erase("original_max_position_embeddings"); expect(b, "original_max_position_embeddings"); }
  { json b = j; b["hidden_act"] = "gelu"; expect(b, "hidden_act"); }
  { json b = j; b["norm_topk_prob"] = 1; expect(b, "norm_topk_prob must be true or false"); }
  { json b = j; b["eos_token_id"] = 100000; expect(b, "eos_token_id"); }
  { json b = fixture_json("dsv2lite_tiny"); b["topk_method"] = "noaux_tc"; expect(b, "topk_method"); }
  { json b = fixture_json("qwen3moe_tiny"); b["num_key_value_heads"] = 3; expect(b, "num_key_value_heads"); }
  { json b = fixture_json("dsv3_fp8_tiny"); b["quantization_config"]["quant_method"] = "gptq"; expect(b, "quant_method"); }

  test::TempDir dir;
  test::write_text(dir.path("config.json"), "{\"model_type\": \"deepseek_v3\", ");
  CHECK_THROWS_WITH(load_model_config(dir.path("config.json")), Contains("config.json") && Contains("malformed JSON"));
  CHECK_THROWS_WITH(load_model_config(dir.path("nope.json")), Contains("nope.json") && Contains("cannot open"));
}
