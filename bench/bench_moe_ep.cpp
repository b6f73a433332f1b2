// afd-bench-ep: MoE-layer throughput of the GPU FFN side on 1, 2, 4... GPUs (expert parallelism), for a preset's
// real expert shapes with synthetic weights, as the engine calls it (pinned host activations in and out). Reports,
// per GPU count, transfer mode and token count: the median time of one MoE layer, tokens/s, the scaling efficiency
// against one GPU, the per-GPU busy times (load imbalance), and the layer's bound from ceilings measured in the same
// run: max(expert bytes touched / (G x HBM copy bandwidth), 2 x activation bytes / PCIe bandwidth).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/ceilings.h"
#include "model/synthetic.h"
#include "moe_gpu/device.h"
#include "moe_gpu/gpu_ffn.h"
#include "util/error.h"
#include "util/numeric.h"

using namespace afd;

namespace {

struct Mode {
  std::string name;
  gpu::EpInput in;
  gpu::EpOutput out;
};

Mode parse_mode(const std::string& s) {
  const size_t plus = s.find('+');
  AFD_REQUIRE(plus != std::string::npos, "--modes: '", s, "' is not INPUT+OUTPUT (e.g. copies+reduce)");
  return {s, gpu::parse_ep_input(s.substr(0, plus)), gpu::parse_ep_output(s.substr(plus + 1))};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Expert rows a MoE layer reads for n tokens under uniform-ish routing: the expected number of distinct experts
// hit, times one expert's bytes (gate, up, down in bf16).
double expert_bytes(const ModelConfig& c, int n) {
  const double E = c.n_routed_experts, hit = E * (1 - std::pow(1 - 1.0 / E, static_cast<double>(n) * c.top_k));
  const double one = 3.0 * c.hidden_size * c.moe_intermediate_size * 2;
  const double shared = c.n_shared_experts > 0 ? 3.0 * c.hidden_size * c.shared_intermediate() * 2 : 0;
  return hit * one + shared;
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "deepseek-v3", gpus_s = "1,2,4", tokens_s = "64,256,1024", modes_s = "copies+reduce",
              out_dir;
  int moe_layers = 2, iters = 10;
  std::string first_s = "0";
  CLI::App app{"afd-bench-ep: MoE-layer throughput of the GPU FFN side over 1..G GPUs (expert parallelism)"};
  app.add_option("--preset", preset, "Architecture preset whose shapes the synthetic weights take.");
  app.add_option("--moe-layers", moe_layers, "MoE layers to place (after the preset's dense layers); all are timed.")
      ->check(CLI::PositiveNumber);
  app.add_option("--gpus", gpus_s, "GPU counts to compare, comma-separated (counts above the machine's are skipped).");
  app.add_option("--tokens", tokens_s, "Tokens per FFN call, comma-separated.");
  app.add_option("--modes", modes_s,
                 "Expert-parallel transfer modes INPUT+OUTPUT, comma-separated: INPUT copies|broadcast, OUTPUT "
                 "reduce|host-sum.");
  app.add_option("--first-gpu-experts", first_s,
                 "Routed experts on the first GPU (which also runs the shared experts), comma-separated values to "
                 "compare; 0 = an even split.");
  app.add_option("--iters", iters, "Timed passes over the MoE layers per point (after one warm-up pass).")
      ->check(CLI::PositiveNumber);
  app.add_option("--out", out_dir, "Directory for results.csv and results.json.");
  CLI11_PARSE(app, argc, argv);
  try {
    auto split = [](const std::string& s) {
      std::vector<std::string> v;
      size_t a = 0;
      while (a <= s.size()) {
        const size_t b = std::min(s.find(',', a), s.size());
        if (b > a) v.push_back(s.substr(a, b - a));
        a = b + 1;
      }
      return v;
    };
    std::vector<int> gpus, tokens, firsts;
    for (const auto& f : split(first_s)) firsts.push_back(std::stoi(f));
    for (const auto& g : split(gpus_s)) gpus.push_back(std::stoi(g));
    for (const auto& t : split(tokens_s)) tokens.push_back(std::stoi(t));
    std::vector<Mode> modes;
    for (const auto& m : split(modes_s)) modes.push_back(parse_mode(m));
    const int have = gpu::device_count();
    AFD_REQUIRE(have > 0, "afd-bench-ep needs a GPU");

    bench::Ceilings ceil;
    bench::measure_gpu_ceilings(ceil, false);
    std::printf("ceilings (GPU 0, this run): HBM copy %.0f GB/s, cuBLAS bf16 %.0f TFLOP/s, PCIe H2D %.1f GB/s\n",
                ceil.hbm_bw / 1e9, ceil.gpu_gemm_flops / 1e12, ceil.pcie_bw / 1e9);

    SyntheticSpec spec{preset, 0, 1};
    ModelConfig c0 = synthetic_config(spec);
    spec.layers = std::min(c0.num_layers, c0.first_k_dense_replace + moe_layers);
    const ModelConfig cfg = synthetic_config(spec);
    std::vector<int> moe;
    for (int l = cfg.first_k_dense_replace; l < cfg.num_layers; ++l) moe.push_back(l);
    AFD_REQUIRE(!moe.empty(), preset, " has no MoE layer within ", spec.layers, " layers");
    std::printf("%s shapes: hidden %d, %d routed experts of width %d (top %d), %d shared; %zu MoE layers timed\n",
                preset.c_str(), cfg.hidden_size, cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.top_k,
                cfg.n_shared_experts, moe.size());
    const auto w = make_synthetic_weights(spec, kWeightsFfn | kWeightsHead, true);
    const int T = *std::max_element(tokens.begin(), tokens.end());
    const size_t h = cfg.hidden_size;

    nlohmann::json rows = nlohmann::json::array();
    std::ofstream csv;
    if (!out_dir.empty()) {
      csv.open(out_dir + "/results.csv");
      csv << "gpus,mode,tokens,layer_ms,tok_s,efficiency,bound_ms,pct_of_bound,xfer_ms,gpu_busy_ms,imbalance\n";
    }
    std::vector<double> one_gpu_ms(tokens.size(), 0);
    std::printf("%5s %-28s %6s %10s %10s %6s %9s %7s %8s  %s\n", "gpus", "mode", "tokens", "layer ms", "tok/s", "eff",
                "bound ms", "%bound", "xfer ms", "per-GPU busy ms (imbalance)");
    for (int G : gpus) {
      if (G > have) {
        std::printf("(skipping %d GPUs: this machine has %d)\n", G, have);
        continue;
      }
      for (size_t run = 0; run < (G == 1 ? 1 : modes.size() * firsts.size()); ++run) {
        const Mode& mode = modes[run % modes.size()];
        const int first = G == 1 ? 0 : firsts[run / modes.size()];
        const std::string label = G == 1 ? "one-gpu" : first > 0 ? mode.name + "/first=" + std::to_string(first)
                                                                  : mode.name;
        gpu::GpuFfnOptions o = gpu::ep_options(0, G, T, mode.in, mode.out);
        o.first_gpu_experts = first;
        gpu::GpuFfn ffn(w, o);
        auto* x = static_cast<uint16_t*>(ffn.alloc_host(static_cast<size_t>(T) * h * 2));
        std::vector<uint16_t> x0(static_cast<size_t>(T) * h);
        std::mt19937_64 rng(7);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (auto& v : x0) v = f32_to_bf16(u(rng));
        for (size_t ti = 0; ti < tokens.size(); ++ti) {
          const int n = tokens[ti];
          std::vector<double> ms, xfer;
          std::vector<std::vector<double>> busy(G);
          for (int it = -1; it < iters; ++it)
            for (int l : moe) {
              std::memcpy(x, x0.data(), static_cast<size_t>(n) * h * 2);  // same activations every call
              const auto t0 = std::chrono::steady_clock::now();
              ffn.ffn_half(l, x, n);
              const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              if (it < 0) continue;  // warm-up
              ms.push_back(s * 1e3);
              xfer.push_back(ffn.last_transfer_seconds() * 1e3);
              const auto b = ffn.last_device_busy_seconds();
              for (int g = 0; g < G && g < static_cast<int>(b.size()); ++g) busy[g].push_back(b[g] * 1e3);
            }
          const double layer_ms = median(ms), tok_s = n / (layer_ms / 1e3);
          if (G == 1) one_gpu_ms[ti] = layer_ms;
          const double eff = one_gpu_ms[ti] > 0 ? one_gpu_ms[ti] / (G * layer_ms) : 0;
          const double bound_s = std::max(expert_bytes(cfg, n) / (G * ceil.hbm_bw),  // copy bw: read + write bytes
                                          2.0 * n * h * 2 / ceil.pcie_bw);
          std::vector<double> bm;
          double sum = 0, mx = 0;
          for (int g = 0; g < G; ++g) {
            bm.push_back(median(busy[g]));
            sum += bm.back();
            mx = std::max(mx, bm.back());
          }
          const double imbalance = sum > 0 ? mx * G / sum : 1;
          std::string busy_s;
          for (double b : bm) busy_s += (busy_s.empty() ? "" : " ") + std::to_string(b).substr(0, 6);
          std::printf("%5d %-28s %6d %10.3f %10.0f %6.2f %9.3f %6.1f%% %8.3f  %s (%.2f)\n", G,
                      label.c_str(), n, layer_ms, tok_s, eff, bound_s * 1e3,
                      100 * bound_s * 1e3 / layer_ms, median(xfer), busy_s.c_str(), imbalance);
          std::fflush(stdout);
          if (csv.is_open())
            csv << G << "," << label << "," << n << "," << layer_ms << "," << tok_s << ","
                << eff << "," << bound_s * 1e3 << "," << 100 * bound_s * 1e3 / layer_ms << "," << median(xfer) << ",\""
                << busy_s << "\"," << imbalance << "\n";
          rows.push_back({{"gpus", G}, {"mode", label}, {"first_gpu_experts", first}, {"tokens", n},
                          {"layer_ms", layer_ms}, {"tok_s", tok_s}, {"efficiency", eff},
                          {"bound_ms", bound_s * 1e3}, {"xfer_ms", median(xfer)}, {"gpu_busy_ms", bm},
                          {"imbalance", imbalance}});
        }
        ffn.free_host(x);
      }
    }
    if (!out_dir.empty()) {
      nlohmann::json j = {{"preset", preset},
                          {"moe_layers", moe.size()},
                          {"ceilings", {{"hbm_copy_gbs", ceil.hbm_bw / 1e9}, {"cublas_bf16_tflops", ceil.gpu_gemm_flops / 1e12},
                                        {"pcie_gbs", ceil.pcie_bw / 1e9}}},
                          {"points", rows}};
      std::ofstream(out_dir + "/results.json") << j.dump(2) << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-bench-ep: error: %s\n", e.what());
    return 1;
  }
}
