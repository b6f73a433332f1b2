// Wall-clock helpers for the command-line programs' reports.
#pragma once

#include <chrono>

namespace afd::app {

using Clock = std::chrono::steady_clock;
inline double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace afd::app
