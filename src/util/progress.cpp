#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace afd {

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(std::max<uint64_t>(total, 1)), enabled_(::isatty(2) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::add(uint64_t n) {
  done_ = std::min(total_, done_ + n);
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_ > std::chrono::milliseconds(100)) {
    last_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final) {
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done_) / static_cast<double>(total_);
  const int fill = static_cast<int>(frac * kWidth);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double mb = static_cast<double>(done_) / 1e6;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% %.1f/%.1f MB %.0f MB/s%s", label_.c_str(), fill,
               "##############################", kWidth - fill, "", static_cast<int>(frac * 100), mb,
               static_cast<double>(total_) / 1e6, secs > 0 ? mb / secs : 0.0, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace afd
