// afd-bench: sweep the CPU/GPU split of the AFD engine and show where the time goes, against the ceilings of the
// machine it runs on, measured in the same run. See `afd-bench --help`.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "app/engine_factory.h"
#include "attn_cpu/kv_cache.h"
#include "app/openmp_policy.h"
#include "bench/bench_clients.h"
#include "bench/bench_point.h"
#include "bench/ceilings.h"
#include "bench/svg_plot.h"
#include "model/run_config.h"
#include "util/error.h"
#include "util/progress.h"

using namespace afd;
using namespace afd::bench;
using nlohmann::json;

namespace {

const std::vector<std::string> kKeys = {"attn_threads", "micro_batches", "batch", "context", "ffn_device",
                                        "clients"};

struct Sweep {
  std::string key;
  std::vector<std::string> values;
};

Sweep parse_sweep(const std::string& s) {
  const auto eq = s.find('=');
  AFD_REQUIRE(eq != std::string::npos && eq > 0 && eq + 1 < s.size(), "--sweep ", s,
              ": expected KEY=V1,V2,... (keys: attn_threads, micro_batches, batch, context, ffn_device, clients)");
  Sweep w{s.substr(0, eq), {}};
  AFD_REQUIRE(std::find(kKeys.begin(), kKeys.end(), w.key) != kKeys.end(), "--sweep: unknown key '", w.key,
              "' (attn_threads, micro_batches, batch, context, ffn_device, clients)");
  std::stringstream ss(s.substr(eq + 1));
  std::string v;
  while (std::getline(ss, v, ',')) {
    AFD_REQUIRE(!v.empty(), "--sweep ", s, ": empty value");
    if (w.key != "ffn_device") {
      size_t pos = 0;
      int n = -1;
      try {
        n = std::stoi(v, &pos);
      } catch (const std::exception&) {
      }
      AFD_REQUIRE(pos == v.size() && n >= (w.key == "attn_threads" ? 0 : 1), "--sweep ", w.key, ": '", v,
                  "' is not a valid count");
    } else {
      AFD_REQUIRE(v == "cpu" || v == "gpu", "--sweep ffn_device: '", v, "' is not cpu or gpu");
    }
    w.values.push_back(v);
  }
  return w;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  AFD_REQUIRE(out.good(), path, ": cannot open for writing");
  out << text;
}

}  // namespace

int main(int argc, char** argv) {
  app::prefer_passive_openmp(argv);
  std::string config, model, out_dir = "bench-out", ffn_remote, kv_dtype;
  std::vector<std::string> sweeps;
  PointSpec base;
  bool quick = false;
  int layers = 0;
  std::string peer_csv;
  int gpus = 1;
  CLI::App app{"afd-bench: sweep the AFD engine's CPU/GPU split (attention threads, micro-batches, batch, context, "
               "FFN device) and report tokens/s, the step breakdown, overlap and % of the roofline bound computed "
               "from ceilings measured at the start of the same run. Writes results.csv, results.json, one SVG "
               "plot per swept key and Chrome traces of the best and worst point under --out."};
  app.add_option("--config", config, "Runtime YAML (model.path or model.synthetic; runtime defaults).");
  app.add_option("--model", model, "Checkpoint directory (instead of --config).");
  app.add_option("--sweep", sweeps,
                 "KEY=V1,V2,... over attn_threads, micro_batches, batch, context, ffn_device, clients (N engines, "
                 "each running the full batch, against one FFN server that batches across them); several --sweep "
                 "flags sweep their product. M = 1 is always added as the no-overlap baseline.");
  app.add_option("--batch", base.batch, "Sequences decoding together (unless swept).");
  app.add_option("--context", base.context, "Prompt length each sequence is prefilled to (unless swept).");
  app.add_option("--prefill", base.prefill,
                 "How sequences get their context: real (prefill batch x context tokens), synthetic (fill the KV cache "
                 "with random values of a realistic scale; decode then costs what it costs after a real prefill, and "
                 "prefill t/s comes from a real prefill of at most --prefill-probe-tokens tokens), or auto: "
                 "synthetic when batch x context > 65536 tokens. The table's prefill column and the JSON say which "
                 "ran.")
      ->check(CLI::IsMember({"auto", "real", "synthetic"}));
  app.add_option("--prefill-probe-tokens", base.prefill_probe_tokens,
                 "With a synthetic fill: tokens of the real prefill that measures prefill t/s (0: not measured).")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--gpus", gpus,
                 "GPUs for the FFN side (expert parallelism, first GPU 0); overrides the config's runtime.gpus.")
      ->check(CLI::PositiveNumber);
  app.add_option("--peer", peer_csv,
                 "CSV of a peer system's decode tokens/s by batch (bench/hf_peer.py writes it), drawn on the batch "
                 "plot and copied into results.json; rows of other contexts are ignored.");
  app.add_option("--warmup", base.warmup, "Decode steps run before measuring.");
  app.add_option("--steps", base.steps, "Measured decode steps per point.");
  app.add_option("--ffn-remote", ffn_remote,
                 "host:port of the afd-ffn-server the clients points use (default: one started in afd-bench on "
                 "loopback around its own FFN backend).");
  app.add_option("--out", out_dir, "Directory for results.csv, results.json, *.svg, trace-*.json.");
  app.add_option("--layers", layers,
                 "Synthetic models only: use this many of the preset's layers (when memory demands it; reported).");
  app.add_option("--kv-cache-dtype", kv_dtype, "KV-cache elements: bf16 (default) or fp8_e4m3 (half the bytes).");
  app.add_flag("--quick", quick, "Small everything (the bundled tiny model by default): finishes in under a minute.");
  CLI11_PARSE(app, argc, argv);
  try {
    app::ModelSource src;
    app::RuntimeOptions ro;
    if (!config.empty()) {
      const RunConfig rc = load_run_config(config);
      src = {rc.model_path, rc.synthetic};
      if (rc.ffn_device) ro.ffn_device = *rc.ffn_device;
      if (rc.attn_threads) ro.attn_threads = *rc.attn_threads;
      if (rc.micro_batches) ro.micro_batches = *rc.micro_batches;
      if (rc.gpus && !app.count("--gpus")) ro.gpus = *rc.gpus;
      if (rc.kv_cache_dtype) ro.kv_cache_dtype = *rc.kv_cache_dtype;
    }
    if (!kv_dtype.empty()) ro.kv_cache_dtype = kv_dtype;
    attn::parse_kv_dtype(ro.kv_cache_dtype, "--kv-cache-dtype");  // a bad value fails here, before any loading
    if (app.count("--gpus")) ro.gpus = gpus;
    if (!model.empty()) src = {model, std::nullopt};
    if (src.dir.empty() && !src.synthetic) src.dir = AFD_DEFAULT_MODEL;
    if (layers > 0) {
      AFD_REQUIRE(src.synthetic.has_value(), "--layers applies to synthetic models only");
      src.synthetic->layers = layers;
      std::fprintf(stderr, "afd-bench: synthetic %s reduced to %d layers\n", src.synthetic->preset.c_str(), layers);
    }
    if (quick) {
      if (!app.count("--batch")) base.batch = 4;
      if (!app.count("--context")) base.context = 32;
      if (!app.count("--warmup")) base.warmup = 1;
      if (!app.count("--steps")) base.steps = 3;
      if (sweeps.empty()) sweeps.push_back("micro_batches=1,2");
    }
    std::vector<Sweep> sw;
    for (const auto& s : sweeps) sw.push_back(parse_sweep(s));
    auto m = std::find_if(sw.begin(), sw.end(), [](const Sweep& s) { return s.key == "micro_batches"; });
    if (m == sw.end()) sw.push_back({"micro_batches", {"1", std::to_string(ro.micro_batches)}});
    else if (std::find(m->values.begin(), m->values.end(), "1") == m->values.end()) m->values.insert(m->values.begin(), "1");
    for (auto& s : sw) s.values.erase(std::unique(s.values.begin(), s.values.end()), s.values.end());

    std::filesystem::create_directories(out_dir);
    std::fprintf(stderr, "afd-bench: measuring ceilings...\n");
    const Ceilings ceil = measure_ceilings(quick, app::gpu_ffn_available());
    std::fprintf(stderr,
                 "ceilings: host read %.1f GB/s, CPU GEMM %.2f TFLOP/s (%s), CPU peak %.2f TFLOP/s (%s)%s\n",
                 ceil.host_read_bw / 1e9, ceil.cpu_gemm_flops / 1e12, ceil.cpu_gemm_impl.c_str(),
                 ceil.cpu_peak_flops / 1e12, ceil.cpu_peak_isa.c_str(),
                 ceil.has_gpu ? (", HBM copy " + std::to_string(static_cast<int>(ceil.hbm_bw / 1e9)) + " GB/s, cuBLAS bf16 " +
                                 std::to_string(static_cast<int>(ceil.gpu_gemm_flops / 1e12)) + " TFLOP/s, PCIe " +
                                 std::to_string(static_cast<int>(ceil.pcie_bw / 1e9)) + " GB/s")
                                    .c_str()
                              : ", no GPU");
    // fp8 experts stay fp8 when every point's FFN is the local GPU (a sweep over ffn_device needs them dequantised).
    bool sweeps_device = false;
    for (const Sweep& s : sw) sweeps_device |= s.key == "ffn_device";
    LoadOptions lo = app::load_options(ro);
    lo.keep_fp8_experts &= !sweeps_device;
    const auto weights = app::load_model(src, true, lo);

    // The points: the cartesian product of the sweeps, first key slowest.
    std::vector<PointSpec> points(1, base);
    points[0].ro = ro;
    for (const Sweep& s : sw) {
      std::vector<PointSpec> next;
      for (const auto& p : points)
        for (const auto& v : s.values) {
          PointSpec q = p;
          q.keys.emplace_back(s.key, v);
          apply_key(q, s.key, v);
          next.push_back(q);
        }
      points = next;
    }
    // Backends are built once per attention thread count and per FFN device, sized for the largest point, so a sweep
    // places the weights (on the GPU: uploads them) once rather than per point.
    app::RuntimeOptions sizing = point_runtime(weights->cfg, points.front());
    for (const auto& p : points) {
      const app::RuntimeOptions r = point_runtime(weights->cfg, p);
      sizing.max_batch = std::max(sizing.max_batch, r.max_batch);
      sizing.max_step_tokens = std::max(sizing.max_step_tokens, r.max_step_tokens);
      sizing.kv_pool_mb = std::max(sizing.kv_pool_mb, r.kv_pool_mb);
    }
    // One attention side (and KV pool, sized for the largest point) at a time, rebuilt when the thread count
    // changes (the previous one is released first, so host memory holds one pool); one FFN side per device.
    std::shared_ptr<AttnBackend> attn;
    int attn_threads = -1;
    std::map<std::string, std::shared_ptr<FfnBackend>> ffn_by_device;
    auto backends_for = [&](const PointSpec& p) {
      app::RuntimeOptions r = sizing;
      r.attn_threads = p.ro.attn_threads;
      r.ffn_device = p.ro.ffn_device;
      auto& f = ffn_by_device[r.ffn_device];
      if (!f) f = app::make_ffn_backend(weights, r);
      if (!attn || attn_threads != r.attn_threads) {
        attn.reset();
        attn = app::make_attn_backend(weights, r);
        attn_threads = r.attn_threads;
      }
      return app::Backends{attn, f};
    };
    const std::map<int, double> peer = peer_csv.empty() ? std::map<int, double>{} : read_peer_csv(peer_csv, base.context);
    Progress bar("afd-bench", points.size());
    std::vector<PointResult> results;
    // Writes every output for the points measured so far (after each point, so an interrupted sweep keeps them).
    auto write_outputs = [&] {
      const std::vector<PointSpec> done(points.begin(), points.begin() + static_cast<long>(results.size()));
      write_file(out_dir + "/results.csv", results_csv(done, results));
      json rj = results_json(src.label(), ceil, done, results);
      for (size_t i = 0; i < results.size(); ++i)
        if (results[i].clients > 0) {
          rj["points"][i]["clients"] = results[i].clients;
          rj["points"][i]["server_requests"] = results[i].server_requests;
          rj["points"][i]["server_calls"] = results[i].server_calls;
          rj["points"][i]["server_rows_per_call"] = results[i].server_rows_per_call;
        }
      for (const auto& [b, t] : peer) rj["peer"].push_back({{"batch", b}, {"context", base.context}, {"decode_tok_s", t}});
      write_file(out_dir + "/results.json", rj.dump(2));
      for (const Sweep& s : sw)
        write_file(out_dir + "/" + s.key + ".svg", sweep_plot(src.label(), s.key, s.values, done, results, peer));
    };
    print_header(stdout, points.front());
    for (const auto& p : points) {
      results.push_back(p.clients > 0 ? run_clients_point(weights, *backends_for(p).ffn, sizing.max_step_tokens,
                                                          ffn_remote, p, ceil)
                                      : run_point(backends_for(p), p, ceil));
      print_row(stdout, p, results.back());
      bar.add(1);
      write_outputs();
    }
    bar.finish();
    write_traces(out_dir, results);
    std::fprintf(stderr, "afd-bench: wrote %s/{results.csv,results.json,*.svg,trace-best.json,trace-worst.json}\n",
                 out_dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-bench: error: %s\n", e.what());
    return 1;
  }
}
