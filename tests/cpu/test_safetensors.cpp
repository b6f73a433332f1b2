// safetensors reading and every kind of broken checkpoint: each must give one sentence naming file and tensor.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "../checkpoint_edit.h"
#include "../test_util.h"
#include "model/weights.h"
#include "model/safetensors.h"
#include "util/error.h"

using namespace afd;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
// A raw file: 8-byte header length, the header text, then `data_bytes` bytes of data.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes, uint64_t hlen_override = 0) {
  std::string s(8, '\0');
  const uint64_t hlen = hlen_override ? hlen_override : header.size();
  std::memcpy(s.data(), &hlen, 8);
  s += header;
  s.append(data_bytes, '\x01');
  test::write_text(path, s);
}
}  // namespace

TEST_CASE("safetensors round trip: write, map, read back", "[safetensors]") {
  test::TempDir dir;
  const auto a = test::random_floats(3 * 5, 1);
  const std::vector<uint16_t> b = {1, 2, 3, 4, 5, 6, 7};
  st::write_file(dir.path("x.safetensors"),
                 {{"a", st::DType::F32, {3, 5}, a.data()}, {"b.c", st::DType::BF16, {7}, b.data()}},
                 {{"format", "pt"}});
  st::SafetensorsFile f(dir.path("x.safetensors"));
  REQUIRE(f.tensors().size() == 2);
  REQUIRE(f.find("a"));
  CHECK(f.find("a")->shape == std::vector<int64_t>{3, 5});
  CHECK(std::memcmp(f.find("a")->data, a.data(), a.size() * 4) == 0);
  CHECK(std::memcmp(f.find("b.c")->data, b.data(), b.size() * 2) == 0);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.find("missing") == nullptr);
}

TEST_CASE("broken safetensors files are rejected with the file and tensor named", "[safetensors]") {
  test::TempDir dir;
  const std::string p = dir.path("bad.safetensors");
  SECTION("shorter than the header length field") {
    test::write_text(p, "abc");
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains(p) && Contains("truncated"));
  }
  SECTION("header length past the end") {
    write_raw(p, "{}", 0, 1ull << 40);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains(p) && Contains("runs past the end"));
  }
  SECTION("malformed header JSON") {
    write_raw(p, "{\"a\": {\"dtype\": ", 16);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains(p) && Contains("malformed safetensors header JSON"));
  }
  SECTION("unknown dtype") {
    write_raw(p, R"({"w": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 2]}})", 2);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains("tensor w") && Contains("unsupported dtype Q4_K"));
  }
  SECTION("offsets out of range (a truncated data section)") {
    write_raw(p, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 12);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains(p) && Contains("tensor w") && Contains("truncated"));
  }
  SECTION("offsets that disagree with dtype and shape") {
    write_raw(p, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}})", 16);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains("tensor w") && Contains("needs 16"));
  }
  SECTION("overlapping tensors") {
    write_raw(p,
              R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                  "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
              24);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains("tensors a and b overlap"));
  }
  SECTION("negative sizes and offsets") {
    write_raw(p, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains("tensor w") && Contains("shape"));
  }
  SECTION("a header entry without offsets") {
    write_raw(p, R"({"w": {"dtype": "F32", "shape": [1]}})", 4);
    CHECK_THROWS_WITH(st::SafetensorsFile(p), Contains("tensor w") && Contains("data_offsets"));
  }
}

TEST_CASE("a truncated checkpoint shard is named in the error", "[safetensors]") {
  test::TempDir dir;
  const std::string src = test::fixture_model("dsv3_tiny");
  fs::copy(src, dir.path("m"));
  const std::string shard = dir.path("m/model.safetensors");
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  CHECK_THROWS_WITH(load_ref_weights(dir.path("m"), false), Contains(shard) && Contains("truncated"));
}

TEST_CASE("a missing shard, a missing tensor and an index that lies are named", "[safetensors]") {
  test::TempDir dir;
  const std::string src = test::fixture_model("dsv3_fp8_tiny");
  SECTION("missing shard") {
    fs::copy(src, dir.path("m"));
    fs::remove(dir.path("m/model-00002-of-00002.safetensors"));
    CHECK_THROWS_WITH(st::Checkpoint(dir.path("m")),
                      Contains("model-00002-of-00002.safetensors") && Contains("missing"));
  }
  SECTION("index names a tensor no shard holds") {
    fs::copy(src, dir.path("m"));
    std::string idx = test::read_text(dir.path("m/model.safetensors.index.json"));
    idx.replace(idx.find("\"weight_map\": {") + 15, 0, "\"model.ghost.weight\": \"model-00001-of-00002.safetensors\",");
    test::write_text(dir.path("m/model.safetensors.index.json"), idx);
    CHECK_THROWS_WITH(st::Checkpoint(dir.path("m")), Contains("model.ghost.weight") && Contains("missing"));
  }
  SECTION("a tensor the model needs is absent") {
    test::rewrite_checkpoint(test::fixture_model("dsv3_tiny"), dir.path("m"),
                             [](auto& ts) { test::drop_tensor(ts, "model.layers.1.mlp.experts.3.up_proj.weight"); });
    CHECK_THROWS_WITH(load_ref_weights(dir.path("m"), false),
                      Contains("model.layers.1.mlp.experts.3.up_proj.weight") && Contains("no tensor"));
  }
  SECTION("fp8 weights without their block scales") {
    test::rewrite_checkpoint(src, dir.path("m"), [](auto& ts) {
      test::drop_tensor(ts, "model.layers.0.self_attn.o_proj.weight_scale_inv");
    });
    CHECK_THROWS_WITH(load_ref_weights(dir.path("m"), false),
                      Contains("model.layers.0.self_attn.o_proj.weight_scale_inv") && Contains("missing"));
  }
}

TEST_CASE("a tensor whose shape or dtype disagrees with config.json is named", "[safetensors]") {
  test::TempDir dir;
  const std::string src = test::fixture_model("dsv3_tiny");
  SECTION("shape") {
    test::rewrite_checkpoint(src, dir.path("m"), [](auto& ts) {
      auto* t = test::find_tensor(ts, "model.layers.0.self_attn.q_a_proj.weight");
      std::swap(t->shape[0], t->shape[1]);
    });
    CHECK_THROWS_WITH(load_ref_weights(dir.path("m"), false),
                      Contains("model.layers.0.self_attn.q_a_proj.weight") && Contains("has shape") &&
                          Contains("config.json implies"));
  }
  SECTION("dtype") {
    test::rewrite_checkpoint(src, dir.path("m"), [](auto& ts) {
      auto* t = test::find_tensor(ts, "model.norm.weight");
      t->dtype = st::DType::I16;
    });
    CHECK_THROWS_WITH(load_ref_weights(dir.path("m"), false),
                      Contains("model.norm.weight") && Contains("I16") && Contains("not a weight dtype"));
  }
  SECTION("fp8 weights in a checkpoint whose config has no quantization_config") {
    test::TempDir d2;
    fs::copy(test::fixture_model("dsv3_fp8_tiny"), d2.path("m"));
    std::string cfg = test::read_text(d2.path("m/config.json"));
    cfg.replace(cfg.find("\"quantization_config\""), std::string("\"quantization_config\"").size(), "\"unused_config\"");
    test::write_text(d2.path("m/config.json"), cfg);
    CHECK_THROWS_WITH(load_ref_weights(d2.path("m"), false), Contains("F8_E4M3") && Contains("quantization_config"));
  }
}
