// Loading with LoadOptions::keep_fp8_experts: the routed experts of an fp8 checkpoint keep their e4m3 bytes and
// block scales (which, dequantised, are exactly the bf16 load's experts), everything else loads as always, a
// non-fp8 checkpoint is unaffected, and the CPU FFN refuses kept-fp8 weights with a clear error.
#include <catch2/catch.hpp>

#include "../checkpoint_edit.h"
#include "../test_util.h"
#include "moe_gpu/cpu_ffn.h"
#include "util/error.h"
#include "util/numeric.h"

using namespace afd;

namespace {
// bf16(fp32(q) * s) over the block grid, as the loader dequantises.
std::vector<uint16_t> dequant(const Linear<uint16_t>& l, int br, int bc) {
  const int sc = (l.in + bc - 1) / bc;
  std::vector<uint16_t> w(static_cast<size_t>(l.out) * l.in);
  for (int r = 0; r < l.out; ++r)
    for (int j = 0; j < l.in; ++j)
      w[static_cast<size_t>(r) * l.in + j] =
          f32_to_bf16(fp8_e4m3_to_f32(l.q8[static_cast<size_t>(r) * l.in + j]) * l.s8[(r / br) * sc + j / bc]);
  return w;
}
}  // namespace

TEST_CASE("kept fp8 experts dequantise to the bf16 load experts, other tensors load as always", "[layouts][fp8]") {
  LoadOptions keep;
  keep.keep_fp8_experts = true;
  const std::string dir = test::fixture_model("dsv3_fp8_tiny");
  const auto k = load_weights<uint16_t>(dir, kWeightsAll, false, keep);
  const auto b = load_weights<uint16_t>(dir, kWeightsAll, false);
  const ModelConfig& c = k->cfg;
  REQUIRE(has_fp8_experts(*k));
  REQUIRE_FALSE(has_fp8_experts(*b));
  int kept = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    INFO("layer " << l);
    CHECK(k->attn[l].o_proj.w == b->attn[l].o_proj.w);
    if (!c.is_moe_layer(l)) {
      CHECK(k->ffn[l].dense.down.w == b->ffn[l].dense.down.w);
      continue;
    }
    CHECK(k->ffn[l].router.w == b->ffn[l].router.w);
    CHECK(k->ffn[l].shared.gate.w == b->ffn[l].shared.gate.w);  // shared experts are dequantised
    for (int e = 0; e < c.n_routed_experts; ++e) {
      const Mlp<uint16_t>& m = k->ffn[l].experts[e];
      const Mlp<uint16_t>& ref = b->ffn[l].experts[e];
      for (auto [x, y] : {std::pair{&m.gate, &ref.gate}, std::pair{&m.up, &ref.up}, std::pair{&m.down, &ref.down}}) {
        REQUIRE(x->is_fp8());
        CHECK(x->w.empty());
        CHECK(x->q8.size() == static_cast<size_t>(x->out) * x->in);
        CHECK(x->s8.size() == static_cast<size_t>((x->out + c.fp8_block_rows - 1) / c.fp8_block_rows) *
                                  ((x->in + c.fp8_block_cols - 1) / c.fp8_block_cols));
        CHECK(dequant(*x, c.fp8_block_rows, c.fp8_block_cols) == y->w);
        ++kept;
      }
    }
  }
  CHECK(kept > 0);
  // A bf16 checkpoint is unaffected by the option.
  const auto plain = load_weights<uint16_t>(test::fixture_model("dsv3_tiny"), kWeightsFfn, false, keep);
  CHECK_FALSE(has_fp8_experts(*plain));
}

TEST_CASE("kept fp8 experts without their block scales or with a wrong shape are named", "[layouts][fp8]") {
  LoadOptions keep;
  keep.keep_fp8_experts = true;
  test::TempDir dir;
  const std::string src = test::fixture_model("dsv3_fp8_tiny");
  SECTION("missing scales") {
    test::rewrite_checkpoint(src, dir.path("m"), [](auto& ts) {
      test::drop_tensor(ts, "model.layers.1.mlp.experts.2.down_proj.weight_scale_inv");
    });
    CHECK_THROWS_WITH(load_weights<uint16_t>(dir.path("m"), kWeightsFfn, false, keep),
                      Catch::Contains("model.layers.1.mlp.experts.2.down_proj.weight_scale_inv") &&
                          Catch::Contains("missing"));
  }
  SECTION("scales of the wrong shape") {
    test::rewrite_checkpoint(src, dir.path("m"), [](auto& ts) {
      test::OwnedTensor* s = test::find_tensor(ts, "model.layers.1.mlp.experts.2.gate_proj.weight_scale_inv");
      REQUIRE(s != nullptr);
      s->shape = {2, 1};  // [1, 2] in the checkpoint: same element count, wrong grid
    });
    CHECK_THROWS_WITH(load_weights<uint16_t>(dir.path("m"), kWeightsFfn, false, keep),
                      Catch::Contains("model.layers.1.mlp.experts.2.gate_proj.weight_scale_inv") &&
                          Catch::Contains("has shape"));
  }
}

TEST_CASE("the CPU FFN refuses kept-fp8 experts, naming the option", "[ffn][fp8]") {
  LoadOptions keep;
  keep.keep_fp8_experts = true;
  const auto k = load_weights<uint16_t>(test::fixture_model("dsv3_fp8_tiny"), kWeightsFfn | kWeightsHead, false, keep);
  try {
    CpuFfn f(k);
    FAIL("CpuFfn accepted kept-fp8 experts");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("keep_fp8_experts") != std::string::npos);
  }
}
