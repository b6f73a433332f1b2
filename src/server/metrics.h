// The server's counters and their Prometheus text exposition (GET /metrics). HTTP counters are updated by the
// connection handlers (atomics, any thread); engine figures come from EngineDriver::stats().
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "server/engine_driver.h"

namespace afd::server {

struct HttpCounters {
  // requests answered, by status class index: [0] 2xx, [1] 400, [2] 401, [3] 404, [4] 408, [5] 413, [6] other 4xx,
  // [7] 5xx
  std::array<std::atomic<int64_t>, 8> by_status{};
  std::atomic<int64_t> prompt_tokens{0}, completion_tokens{0};
  std::atomic<int64_t> disconnects{0};       // streams whose client went away before the end (request cancelled)
  std::atomic<int64_t> open_connections{0};
  void count(int status);
};

std::string render_metrics(const HttpCounters& http, const DriverStats& eng);

}  // namespace afd::server
