#include "engine/step_stats.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace afd::engine {

void StatsTotals::add(const StepStats& s) {
  ++steps;
  tokens += s.tokens;
  step_s += s.step_s;
  attn_s += s.attn_s;
  ffn_s += s.ffn_s;
  xfer_s += s.xfer_s;
  add_gpu_busy(gpu_busy_s, s.gpu_busy_s);
}

double gpu_imbalance(const std::vector<double>& busy) {
  double sum = 0, mx = 0;
  for (double b : busy) {
    sum += b;
    mx = b > mx ? b : mx;
  }
  return sum > 0 ? mx * static_cast<double>(busy.size()) / sum : 1.0;
}

void add_gpu_busy(std::vector<double>& into, const std::vector<double>& call) {
  if (into.size() < call.size()) into.resize(call.size(), 0.0);
  for (size_t i = 0; i < call.size(); ++i) into[i] += call[i];
}

std::string StatsTotals::summary() const {
  char buf[512];
  const double ms = 1e3 / (steps ? steps : 1);
  std::snprintf(buf, sizeof buf,
                "%lld steps, %lld tokens: step %.3f ms, attention busy %.3f ms (idle %.3f), FFN busy %.3f ms "
                "(idle %.3f; transfers %.3f), overlap %.2f",
                static_cast<long long>(steps), static_cast<long long>(tokens), step_s * ms, attn_s * ms,
                (step_s - attn_s) * ms, ffn_s * ms, (step_s - ffn_s) * ms, xfer_s * ms, overlap());
  std::string out = buf;
  if (gpu_busy_s.size() > 1) {
    out += "; FFN GPUs busy";
    for (double b : gpu_busy_s) {
      std::snprintf(buf, sizeof buf, " %.3f", b * ms);
      out += buf;
    }
    std::snprintf(buf, sizeof buf, " ms (imbalance max/mean %.2f)", gpu_imbalance(gpu_busy_s));
    out += buf;
  }
  return out;
}

void write_chrome_trace(const std::string& path, const std::vector<StepStats>& steps) {
  using nlohmann::json;
  json events = json::array();
  if (steps.empty()) return;
  const auto t0 = steps.front().begin;
  auto us = [&](Clock::time_point t) { return std::chrono::duration<double, std::micro>(t - t0).count(); };
  static const char* kNames[] = {"embed", "attn", "ffn", "head"};
  for (const auto& st : steps) {
    for (const Span& s : st.spans) {
      const bool attn_side = s.kind == SpanKind::kAttn || s.kind == SpanKind::kEmbed;
      events.push_back({{"name", std::string(kNames[static_cast<int>(s.kind)]) + " L" + std::to_string(s.layer) +
                                     " mb" + std::to_string(s.micro_batch)},
                        {"cat", kNames[static_cast<int>(s.kind)]},
                        {"ph", "X"},
                        {"ts", us(s.begin)},
                        {"dur", us(s.end) - us(s.begin)},
                        {"pid", 1},
                        {"tid", attn_side ? 1 : 2},
                        {"args", {{"step", st.step}, {"micro_batch", s.micro_batch}, {"layer", s.layer}}}});
    }
  }
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", 1}, {"args", {{"name", "attention (CPU)"}}}});
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", 2}, {"args", {{"name", "FFN"}}}});
  std::ofstream out(path);
  AFD_REQUIRE(out.good(), path, ": cannot open for writing");
  out << json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

}  // namespace afd::engine
