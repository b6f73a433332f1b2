#include "bench/bench_point.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "attn_cpu/kv_cache.h"
#include "attn_cpu/matmul.h"
#include "bench/svg_plot.h"
#include "cpu/dnnl_linear.h"
#include "model/memory_plan.h"
#include "util/error.h"

namespace afd::bench {

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
std::string key_label(const PointSpec& p, const std::string& skip) {
  std::string s;
  for (const auto& [k, v] : p.keys)
    if (k != skip) s += (s.empty() ? "" : ", ") + k + "=" + v;
  return s.empty() ? "afd" : s;
}
}  // namespace

void apply_key(PointSpec& p, const std::string& key, const std::string& v) {
  if (key == "attn_threads") p.ro.attn_threads = std::stoi(v);
  else if (key == "micro_batches") p.ro.micro_batches = std::stoi(v);
  else if (key == "batch") p.batch = std::stoi(v);
  else if (key == "context") p.context = std::stoi(v);
  else if (key == "ffn_device") p.ro.ffn_device = v;
  else if (key == "clients") p.clients = std::stoi(v);
}

// New tokens each benchmark request may generate: the warm-up and measured steps, plus slack for the steps in
// which the batch's first sequences already decode while the last ones are still being filled (the rest is
// cancelled after the measurement).
static int decode_tokens(const PointSpec& spec) { return spec.warmup + spec.steps + 16; }

app::RuntimeOptions point_runtime(const ModelConfig& cfg, const PointSpec& spec) {
  PlanInputs in;
  in.batch = spec.batch;
  in.context = spec.context;
  in.kv_elem_bytes = attn::kv_dtype_bytes(attn::parse_kv_dtype(spec.ro.kv_cache_dtype, "--kv-cache-dtype"));
  const MemoryPlan plan = plan_memory(cfg, in);
  app::RuntimeOptions ro = spec.ro;
  ro.max_batch = spec.batch;
  ro.max_step_tokens = std::max(512, spec.batch);
  ro.kv_block = 64;
  const int64_t per_seq = ((spec.context + decode_tokens(spec) + 63) / 64) * 64;
  ro.kv_pool_mb = (spec.batch * per_seq * plan.kv_bytes_per_token >> 20) + 2;
  ro.show_progress = false;
  ro.trace = true;
  ro.trace_steps = 1 << 20;
  return ro;
}

std::string prefill_mode(const PointSpec& p) {
  if (p.prefill != "auto") return p.prefill;
  return static_cast<int64_t>(p.batch) * p.context > kAutoSyntheticTokens ? "synthetic" : "real";
}

namespace {
// Prefill tokens/s of a real prefill of at most spec.prefill_probe_tokens tokens (sequences of up to `context` tokens,
// one new token each), on the point's engine before its workload; returns {tokens/s, tokens}.
std::pair<double, int64_t> probe_prefill(engine::Engine& eng, const PointSpec& spec, std::mt19937& rng) {
  const int64_t total = std::min<int64_t>(static_cast<int64_t>(spec.batch) * spec.context, spec.prefill_probe_tokens);
  const int len = static_cast<int>(std::min<int64_t>(spec.context, total));
  const int seqs = static_cast<int>(total / len);
  for (int b = 0; b < seqs; ++b) {
    engine::GenRequest req;
    for (int t = 0; t < len; ++t) req.prompt.push_back(static_cast<int32_t>(rng() % eng.config().vocab_size));
    req.max_new_tokens = 1;
    req.ignore_eos = true;
    eng.submit(req);
  }
  const auto t0 = engine::Clock::now();
  eng.run_until_idle();
  const double s = std::chrono::duration<double>(engine::Clock::now() - t0).count();
  for (const auto& q : eng.take_finished())
    AFD_CHECK(q->finish == engine::FinishReason::kLength, "the prefill probe's request ended ",
              engine::finish_name(q->finish), ": ", q->error);
  return {static_cast<double>(seqs) * len / s, static_cast<int64_t>(seqs) * len};
}
}  // namespace

void set_bound(PointResult& r, const ModelConfig& cfg, int tokens, int context, const Ceilings& c, bool ffn_gpu) {
  PlanInputs in;
  in.batch = tokens;
  in.context = context;
  in.attn_weight_elem_bytes = attn::projection_bf16_default() ? 2 : 4;  // as the attention side keeps them
  const MemoryPlan plan = plan_memory(cfg, in);
  // Both sides on the CPU share its bandwidth and cores, so their times add; with the FFN on the GPU the slower
  // side (or the link) bounds the step.
  // The attention core runs in the project's kernels: its ceiling is the CPU's peak, which those kernels can
  // approach more closely than a oneDNN GEMM (on an AMX host they ran 1.3x oneDNN's rate). The projections run in
  // oneDNN (its GEMM rate), after the core on the same cores; every step reads the attention weights once besides
  // the KV.
  const double attn_rate = std::max(c.cpu_gemm_flops, c.cpu_peak_flops);
  const double t_kv = plan.step_host_read_bytes() / c.host_read_bw;
  const double t_attn = plan.step_attn_flops / attn_rate + plan.step_proj_flops / c.cpu_gemm_flops;
  const double t_attn_side = std::max(t_kv, t_attn);
  double t_ffn_side, t_xfer = 0;
  const bool gpu = ffn_gpu && c.has_gpu;
  if (gpu) {
    t_ffn_side = std::max(plan.step_expert_bytes / c.hbm_bw, plan.step_expert_flops / c.gpu_gemm_flops);
    t_xfer = plan.step_xfer_bytes / c.pcie_bw;
  } else {
    t_ffn_side = std::max(plan.step_expert_bytes / c.host_read_bw, plan.step_expert_flops / c.cpu_gemm_flops);
  }
  const double bound = gpu ? std::max({t_attn_side, t_ffn_side, t_xfer}) : t_attn_side + t_ffn_side;
  r.bound_ms = bound * 1e3;
  r.pct_of_bound = r.decode_tok_s > 0 && bound > 0 ? 100.0 * (r.decode_tok_s * bound / tokens) : 0;
  r.bound_by = gpu ? (bound == t_xfer ? "PCIe" : bound == t_ffn_side ? "GPU experts" : t_kv >= t_attn ? "host reads" : "CPU attention")
                   : "CPU (attention + FFN)";
}

PointResult run_point(const app::Backends& backends, const PointSpec& spec, const Ceilings& c) {
  const ModelConfig& cfg = backends.attn->config();
  AFD_REQUIRE(spec.context + decode_tokens(spec) <= cfg.max_position_embeddings, "context ", spec.context, " + ",
              decode_tokens(spec), " decode steps exceed the model's ", cfg.max_position_embeddings, " positions");
  PlanInputs in;
  in.batch = spec.batch;
  in.context = spec.context;
  const MemoryPlan plan = plan_memory(cfg, in);
  auto eng = app::make_engine(backends, point_runtime(cfg, spec));

  PointResult r;
  r.ffn = eng->ffn().name();
  r.host_kv_mb = static_cast<double>(spec.batch) * spec.context * plan.kv_bytes_per_token / 1e6;
  r.gpu_mb = static_cast<double>(backends.ffn->device_memory_bytes()) / 1e6;
  r.prefill = prefill_mode(spec);
  const bool synthetic = r.prefill == "synthetic";
  AFD_REQUIRE(synthetic || r.prefill == "real", "prefill '", spec.prefill, "' is not real, synthetic or auto");
  std::mt19937 rng(1234);
  if (synthetic && spec.prefill_probe_tokens > 0)
    std::tie(r.prefill_tok_s, r.prefill_tokens) = probe_prefill(*eng, spec, rng);
  std::vector<int64_t> ids;
  std::vector<char> started;  // by submission index: the sequence has its first token (its prefill is done)
  int first_tokens = 0;
  for (int b = 0; b < spec.batch; ++b) {
    engine::GenRequest req;
    for (int t = 0; t < spec.context; ++t) req.prompt.push_back(static_cast<int32_t>(rng() % cfg.vocab_size));
    req.max_new_tokens = decode_tokens(spec);
    req.ignore_eos = true;
    req.synthetic_context = synthetic;
    ids.push_back(eng->submit(req, [&](int64_t id, int32_t t, engine::FinishReason) {
      const size_t i = std::find(ids.begin(), ids.end(), id) - ids.begin();
      if (t >= 0 && i < started.size() && !started[i]) {
        started[i] = 1;
        ++first_tokens;
      }
    }));
  }
  started.assign(ids.size(), 0);
  // Prefill (or the synthetic fill): until every sequence has its first token (early finishers' decode tokens ride
  // along).
  const auto t0 = engine::Clock::now();
  while (first_tokens < spec.batch)
    if (!eng->step()) {  // a request was rejected (e.g. an attention side without the synthetic fill)
      for (const auto& q : eng->take_finished())
        AFD_REQUIRE(q->error.empty(), "a benchmark request was ", engine::finish_name(q->finish), ": ", q->error);
      fail("the engine stopped before every prefill finished");
    }
  const double prefill_s = std::chrono::duration<double>(engine::Clock::now() - t0).count();
  if (synthetic) {
    r.kv_fill_s = prefill_s;
  } else {
    r.prefill_tok_s = spec.batch * static_cast<double>(spec.context) / prefill_s;
    r.prefill_tokens = static_cast<int64_t>(spec.batch) * spec.context;
  }
  for (int i = 0; i < spec.warmup; ++i) eng->step();
  std::vector<double> step_s;
  double attn = 0, ffn = 0, overlap = 0, xfer = 0;
  const size_t first_measured = eng->traced_steps().size();
  for (int i = 0; i < spec.steps; ++i) {
    eng->step();
    const engine::StepStats& st = eng->last_step();
    // tok/s below is batch / step time: every measured step must advance every sequence by one token.
    AFD_REQUIRE(st.tokens == spec.batch && st.sequences == spec.batch, "measured step ", i + 1, " of the point (batch ",
                spec.batch, ", M ", spec.ro.micro_batches, ") decoded ", st.tokens, " tokens of ", st.sequences,
                " sequences instead of one token of each of the ", spec.batch, ": the batch was not decoding together");
    step_s.push_back(st.step_s);
    attn += st.attn_s;
    ffn += st.ffn_s;
    xfer += st.xfer_s;
    overlap += st.overlap();
  }
  for (int64_t id : ids) eng->cancel(id);  // the slack tokens are not needed
  eng->run_until_idle();
  const auto& traced = eng->traced_steps();
  r.trace.assign(traced.begin() + static_cast<long>(first_measured),
                 traced.begin() + static_cast<long>(std::min(traced.size(), first_measured + spec.steps)));
  const double med = median(step_s);
  r.tpot_ms = med * 1e3;
  r.step_min_ms = *std::min_element(step_s.begin(), step_s.end()) * 1e3;
  r.step_max_ms = *std::max_element(step_s.begin(), step_s.end()) * 1e3;
  r.decode_tok_s = spec.batch / med;
  r.attn_ms = attn / spec.steps * 1e3;
  r.ffn_ms = ffn / spec.steps * 1e3;
  r.xfer_ms = xfer / spec.steps * 1e3;
  r.attn_idle_ms = std::max(0.0, r.tpot_ms - r.attn_ms);
  r.ffn_idle_ms = std::max(0.0, r.tpot_ms - r.ffn_ms);
  r.overlap = overlap / spec.steps;

  const bool gpu = r.ffn.rfind("gpu", 0) == 0 || r.ffn.find("GPU") != std::string::npos;
  set_bound(r, cfg, spec.batch, spec.context, c, gpu);
  return r;
}

void print_header(std::FILE* f, const PointSpec& first) {
  for (const auto& kv : first.keys) std::fprintf(f, "%-14s", kv.first.c_str());
  std::fprintf(f, "%10s %9s %11s %9s %9s %8s %8s %9s %8s %7s  %s\n", "tok/s", "TPOT ms", "prefill t/s", "attn ms",
               "ffn ms", "xfer ms", "overlap", "bound ms", "% bound", "prefill", "bound by");
}

void print_row(std::FILE* f, const PointSpec& p, const PointResult& r) {
  for (const auto& kv : p.keys) std::fprintf(f, "%-14s", kv.second.c_str());
  std::fprintf(f, "%10.1f %9.3f %11.1f %9.3f %9.3f %8.3f %8.2f %9.3f %7.1f%% %7s  %s\n", r.decode_tok_s, r.tpot_ms,
               r.prefill_tok_s, r.attn_ms, r.ffn_ms, r.xfer_ms, r.overlap, r.bound_ms, r.pct_of_bound,
               r.prefill == "synthetic" ? "synth" : r.prefill.c_str(), r.bound_by.c_str());
  std::fflush(f);
}

std::string results_csv(const std::vector<PointSpec>& ps, const std::vector<PointResult>& rs) {
  std::ostringstream o;
  for (const auto& kv : ps.front().keys) o << kv.first << ",";
  o << "batch,context,ffn,decode_tok_s,tpot_ms,step_min_ms,step_max_ms,prefill_tok_s,attn_ms,ffn_ms,attn_idle_ms,"
       "ffn_idle_ms,xfer_ms,overlap,bound_ms,pct_of_bound,bound_by,host_kv_mb,prefill,prefill_tokens,kv_fill_s,gpu_mb\n";
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto& r = rs[i];
    for (const auto& kv : ps[i].keys) o << kv.second << ",";
    o << ps[i].batch << "," << ps[i].context << ",\"" << r.ffn << "\"," << r.decode_tok_s << "," << r.tpot_ms << ","
      << r.step_min_ms << "," << r.step_max_ms << "," << r.prefill_tok_s << "," << r.attn_ms << "," << r.ffn_ms << ","
      << r.attn_idle_ms << "," << r.ffn_idle_ms << "," << r.xfer_ms << "," << r.overlap << "," << r.bound_ms << "," << r.pct_of_bound
      << ",\"" << r.bound_by << "\"," << r.host_kv_mb << "," << r.prefill << "," << r.prefill_tokens << ","
      << r.kv_fill_s << "," << r.gpu_mb << "\n";
  }
  return o.str();
}

nlohmann::json results_json(const std::string& model, const Ceilings& c, const std::vector<PointSpec>& ps,
                            const std::vector<PointResult>& rs) {
  nlohmann::json j = {{"model", model},
                      {"ceilings",
                       {{"host_read_GBps", c.host_read_bw / 1e9},
                        {"cpu_gemm_TFLOPs", c.cpu_gemm_flops / 1e12},
                        {"cpu_gemm_impl", c.cpu_gemm_impl},
                        {"cpu_peak_TFLOPs", c.cpu_peak_flops / 1e12},
                        {"cpu_peak_isa", c.cpu_peak_isa},
                        {"gpu", c.has_gpu},
                        {"hbm_copy_GBps", c.hbm_bw / 1e9},
                        {"gpu_bf16_TFLOPs", c.gpu_gemm_flops / 1e12},
                        {"pcie_h2d_GBps", c.pcie_bw / 1e9}}},
                      {"baselines",
                       {{"micro_batches_1", "included as points with micro_batches=1"},
                        {"all_on_ffn_device", "not available: afd has no GPU attention lane yet"}}},
                      {"points", nlohmann::json::array()}};
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto& r = rs[i];
    nlohmann::json keys = nlohmann::json::object();
    for (const auto& [k, v] : ps[i].keys) keys[k] = v;
    j["points"].push_back({{"keys", keys},           {"batch", ps[i].batch},         {"context", ps[i].context},
                           {"ffn", r.ffn},           {"decode_tok_s", r.decode_tok_s}, {"tpot_ms", r.tpot_ms},
                           {"step_min_ms", r.step_min_ms}, {"step_max_ms", r.step_max_ms},
                           {"prefill_tok_s", r.prefill_tok_s}, {"attn_ms", r.attn_ms}, {"ffn_ms", r.ffn_ms},
                           {"attn_idle_ms", r.attn_idle_ms}, {"ffn_idle_ms", r.ffn_idle_ms}, {"xfer_ms", r.xfer_ms}, {"overlap", r.overlap},
                           {"bound_ms", r.bound_ms}, {"pct_of_bound", r.pct_of_bound}, {"bound_by", r.bound_by},
                           {"host_kv_mb", r.host_kv_mb}, {"gpu_mb", r.gpu_mb}, {"prefill", r.prefill},
                           {"prefill_tokens", r.prefill_tokens}, {"kv_fill_s", r.kv_fill_s}});
  }
  return j;
}

std::map<int, double> read_peer_csv(const std::string& path, int context) {
  std::ifstream f(path);
  AFD_REQUIRE(f.good(), "cannot read the peer file ", path);
  std::string line;
  std::getline(f, line);
  AFD_REQUIRE(line.rfind("preset,batch,context,step_ms,tok_s", 0) == 0, path,
              ": the first line must be the header preset,batch,context,step_ms,tok_s");
  std::map<int, double> out;
  for (int no = 2; std::getline(f, line); ++no) {
    if (line.empty()) continue;
    std::vector<std::string> c;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) c.push_back(cell);
    AFD_REQUIRE(c.size() == 5, path, " line ", no, ": expected 5 comma-separated fields, got ", c.size());
    if (c[4] == "oom") continue;
    try {
      if (std::stoi(c[2]) == context) out[std::stoi(c[1])] = std::stod(c[4]);
    } catch (const std::exception&) {
      fail(path, " line ", no, ": batch, context and tok_s must be numbers");
    }
  }
  return out;
}

std::string sweep_plot(const std::string& model, const std::string& key, const std::vector<std::string>& values,
                       const std::vector<PointSpec>& ps, const std::vector<PointResult>& rs,
                       const std::map<int, double>& peer) {
  // One series per combination of the other keys; the bound (tokens/s it allows) dashed, once per distinct curve.
  std::map<std::string, Series> series, bounds;
  for (size_t i = 0; i < ps.size(); ++i) {
    std::string v;
    for (const auto& kv : ps[i].keys)
      if (kv.first == key) v = kv.second;
    const size_t x = std::find(values.begin(), values.end(), v) - values.begin();
    if (x >= values.size()) continue;
    const std::string name = key_label(ps[i], key);
    auto& s = series[name];
    s.name = name;
    s.y.resize(values.size(), NAN);
    s.y[x] = rs[i].decode_tok_s;
    auto& b = bounds[name];
    b.name = "bound (" + name + ")";
    b.dashed = true;
    b.y.resize(values.size(), NAN);
    b.y[x] = rs[i].bound_ms > 0 ? ps[i].batch / (rs[i].bound_ms / 1e3) : NAN;
  }
  std::vector<Series> all;
  for (auto& [n, s] : series) all.push_back(s);
  if (key == "batch" && !peer.empty()) {
    Series p{"HF transformers, all on the GPU", std::vector<double>(values.size(), NAN), false};
    for (size_t x = 0; x < values.size(); ++x) {
      const auto it = peer.find(std::stoi(values[x]));
      if (it != peer.end()) p.y[x] = it->second;
    }
    all.push_back(p);
  }
  std::vector<std::vector<double>> seen;
  for (auto& [n, b] : bounds)
    if (std::find(seen.begin(), seen.end(), b.y) == seen.end()) {
      seen.push_back(b.y);
      all.push_back(b);
    }
  return svg_line_plot("afd decode tokens/s vs " + key + " (" + model + ")", key, values, "decode tokens/s", all);
}

void write_traces(const std::string& dir, const std::vector<PointResult>& rs) {
  if (rs.empty()) return;
  auto best = std::max_element(rs.begin(), rs.end(),
                               [](const PointResult& a, const PointResult& b) { return a.decode_tok_s < b.decode_tok_s; });
  auto worst = std::min_element(rs.begin(), rs.end(),
                                [](const PointResult& a, const PointResult& b) { return a.decode_tok_s < b.decode_tok_s; });
  engine::write_chrome_trace(dir + "/trace-best.json", best->trace);
  engine::write_chrome_trace(dir + "/trace-worst.json", worst->trace);
}

}  // namespace afd::bench
