#include "model/run_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/kv_dtype.h"

namespace afd {

namespace fs = std::filesystem;

namespace {

void only_keys(const YAML::Node& n, const std::string& where, const std::set<std::string>& allowed,
               const std::string& src) {
  AFD_REQUIRE(n.IsMap(), src, ": ", where.empty() ? "the top level" : where, " must be a mapping");
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(src, ": unknown key '", where.empty() ? k : where + "." + k, "' (expected one of: ", list, ")");
    }
  }
}

template <typename T>
T scalar(const YAML::Node& n, const std::string& key, const std::string& src, const char* what) {
  AFD_REQUIRE(n.IsScalar(), src, ": ", key, " must be ", what);
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(src, ": ", key, " = '", n.Scalar(), "' is not ", what);
  }
}

}  // namespace

RunConfig parse_run_config(const std::string& text, const std::string& src, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(src, ": malformed YAML at line ", e.mark.line + 1, ": ", e.msg);
  }
  RunConfig c;
  c.source = src;
  only_keys(root, "", {"model", "engine", "generation", "runtime", "ffn"}, src);
  AFD_REQUIRE(root["model"], src, ": missing key 'model'");
  const YAML::Node m = root["model"];
  only_keys(m, "model", {"path", "synthetic"}, src);
  AFD_REQUIRE(m["path"] || m["synthetic"], src, ": missing key 'model.path' (or 'model.synthetic')");
  AFD_REQUIRE(!(m["path"] && m["synthetic"]), src, ": give model.path or model.synthetic, not both");
  if (m["path"]) {
    fs::path p = scalar<std::string>(m["path"], "model.path", src, "a directory path");
    if (p.is_relative()) p = fs::path(base_dir) / p;
    c.model_path = p.lexically_normal().string();
  } else {
    const YAML::Node sy = m["synthetic"];
    only_keys(sy, "model.synthetic", {"preset", "layers", "seed"}, src);
    AFD_REQUIRE(sy["preset"], src, ": missing key 'model.synthetic.preset'");
    SyntheticSpec spec;
    spec.preset = scalar<std::string>(sy["preset"], "model.synthetic.preset", src, "a preset name");
    if (sy["layers"]) spec.layers = scalar<int>(sy["layers"], "model.synthetic.layers", src, "an integer");
    if (sy["seed"]) spec.seed = scalar<uint64_t>(sy["seed"], "model.synthetic.seed", src, "a non-negative integer");
    AFD_REQUIRE(spec.layers >= 0, src, ": model.synthetic.layers must be >= 1");
    try {
      synthetic_config(spec);
    } catch (const Error& e) {
      fail(src, ": model.synthetic: ", e.what());
    }
    c.synthetic = spec;
  }
  if (root["engine"]) c.engine = scalar<std::string>(root["engine"], "engine", src, "an engine name");
  if (const YAML::Node g = root["generation"]) {
    only_keys(g, "generation", {"max_new_tokens", "temperature", "top_k", "top_p", "seed"}, src);
    if (g["max_new_tokens"]) c.max_new_tokens = scalar<int>(g["max_new_tokens"], "generation.max_new_tokens", src, "an integer");
    if (g["temperature"]) c.temperature = scalar<float>(g["temperature"], "generation.temperature", src, "a number");
    if (g["top_k"]) c.top_k = scalar<int>(g["top_k"], "generation.top_k", src, "an integer");
    if (g["top_p"]) c.top_p = scalar<float>(g["top_p"], "generation.top_p", src, "a number");
    if (g["seed"]) c.seed = scalar<uint64_t>(g["seed"], "generation.seed", src, "a non-negative integer");
    AFD_REQUIRE(!c.max_new_tokens || *c.max_new_tokens >= 0, src, ": generation.max_new_tokens must be >= 0");
  }
  if (const YAML::Node r = root["runtime"]) {
    only_keys(r, "runtime",
              {"ffn_device", "attn_threads", "micro_batches", "max_batch", "max_step_tokens", "kv_pool_mb",
               "kv_cache_dtype", "gpus"},
              src);
    if (r["ffn_device"]) {
      c.ffn_device = scalar<std::string>(r["ffn_device"], "runtime.ffn_device", src, "gpu, cpu or auto");
      AFD_REQUIRE(*c.ffn_device == "gpu" || *c.ffn_device == "cpu" || *c.ffn_device == "auto", src,
                  ": runtime.ffn_device = '", *c.ffn_device, "' is not gpu, cpu or auto");
    }
    auto positive = [&](const char* key, int min_value) -> std::optional<int> {
      if (!r[key]) return std::nullopt;
      const std::string name = std::string("runtime.") + key;
      const int v = scalar<int>(r[key], name, src, "an integer");
      AFD_REQUIRE(v >= min_value, src, ": ", name, " = ", v, " must be >= ", min_value);
      return v;
    };
    c.attn_threads = positive("attn_threads", 0);
    c.micro_batches = positive("micro_batches", 1);
    c.max_batch = positive("max_batch", 1);
    c.max_step_tokens = positive("max_step_tokens", 1);
    if (auto v = positive("kv_pool_mb", 1)) c.kv_pool_mb = *v;
    if (r["kv_cache_dtype"]) {
      c.kv_cache_dtype = scalar<std::string>(r["kv_cache_dtype"], "runtime.kv_cache_dtype", src, "bf16 or fp8_e4m3");
      parse_kv_dtype(*c.kv_cache_dtype, src + ": runtime.kv_cache_dtype");  // a bad name fails here, with the file
    }
    c.gpus = positive("gpus", 1);
  }
  if (const YAML::Node f = root["ffn"]) {
    only_keys(f, "ffn", {"remote"}, src);
    if (f["remote"]) {
      c.ffn_remote = scalar<std::string>(f["remote"], "ffn.remote", src, "host:port");
      const size_t colon = c.ffn_remote->rfind(':');
      AFD_REQUIRE(colon != std::string::npos && colon > 0 && colon + 1 < c.ffn_remote->size(), src,
                  ": ffn.remote = '", *c.ffn_remote, "' is not host:port");
    }
  }
  return c;
}

RunConfig load_run_config(const std::string& path) {
  std::ifstream in(path);
  AFD_REQUIRE(in.good(), path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_run_config(ss.str(), path, fs::path(path).parent_path().string());
}

}  // namespace afd
