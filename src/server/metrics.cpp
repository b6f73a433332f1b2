#include "server/metrics.h"

#include <sstream>

namespace afd::server {

namespace {
constexpr const char* kStatusLabel[8] = {"2xx", "400", "401", "404", "408", "413", "4xx", "5xx"};

int status_index(int status) {
  switch (status) {
    case 400: return 1;
    case 401: return 2;
    case 404: return 3;
    case 408: return 4;
    case 413: return 5;
    default: return status < 300 ? 0 : status < 500 ? 6 : 7;
  }
}

void metric(std::ostringstream& os, const char* name, const char* type, const char* help, double value) {
  os << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n' << name << ' ' << value << '\n';
}
}  // namespace

void HttpCounters::count(int status) { by_status[status_index(status)].fetch_add(1); }

std::string render_metrics(const HttpCounters& http, const DriverStats& e) {
  std::ostringstream os;
  os.precision(9);
  os << "# HELP afd_http_requests_total HTTP requests answered, by status.\n# TYPE afd_http_requests_total counter\n";
  for (size_t i = 0; i < http.by_status.size(); ++i)
    os << "afd_http_requests_total{status=\"" << kStatusLabel[i] << "\"} " << http.by_status[i].load() << '\n';
  metric(os, "afd_prompt_tokens_total", "counter", "Prompt tokens of accepted completion requests.",
         static_cast<double>(http.prompt_tokens.load()));
  metric(os, "afd_completion_tokens_total", "counter", "Tokens generated for clients.",
         static_cast<double>(http.completion_tokens.load()));
  metric(os, "afd_client_disconnects_total", "counter", "Requests cancelled because their client went away.",
         static_cast<double>(http.disconnects.load()));
  metric(os, "afd_open_connections", "gauge", "Open HTTP connections.",
         static_cast<double>(http.open_connections.load()));
  metric(os, "afd_engine_tokens_total", "counter", "Tokens the engine processed (prefill and decode).",
         static_cast<double>(e.tokens));
  metric(os, "afd_engine_steps_total", "counter", "Engine steps.", static_cast<double>(e.steps));
  metric(os, "afd_requests_in_flight", "gauge", "Requests submitted to the engine and not finished.",
         static_cast<double>(e.in_flight));
  metric(os, "afd_running_sequences", "gauge", "Sequences admitted by the scheduler (holding KV blocks).",
         static_cast<double>(e.running));
  metric(os, "afd_queue_depth", "gauge", "Requests submitted and not yet admitted by the scheduler.",
         static_cast<double>(e.waiting));
  metric(os, "afd_requests_cancelled_total", "counter", "Engine requests ended by cancellation.",
         static_cast<double>(e.cancelled));
  metric(os, "afd_requests_rejected_total", "counter", "Engine requests rejected by the scheduler.",
         static_cast<double>(e.rejected));
  metric(os, "afd_step_seconds", "gauge", "Wall time of the last engine step.", e.last_step_s);
  metric(os, "afd_step_seconds_total", "counter", "Wall time of all engine steps.", e.step_s_total);
  metric(os, "afd_overlap", "gauge", "max(attention busy, FFN busy) / step time over all steps.", e.overlap_total);
  metric(os, "afd_overlap_last_step", "gauge", "Overlap of the last step.", e.last_overlap);
  metric(os, "afd_kv_blocks_used", "gauge", "KV-cache blocks held by sequences.", static_cast<double>(e.kv_blocks_used));
  metric(os, "afd_kv_blocks_total", "gauge", "KV-cache blocks in the pool.", static_cast<double>(e.kv_blocks_total));
  metric(os, "afd_gpu_memory_bytes", "gauge", "GPU memory the FFN side holds (weights and workspace; 0 on the CPU FFN).",
         static_cast<double>(e.gpu_memory_bytes));
  return os.str();
}

}  // namespace afd::server
