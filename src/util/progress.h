// A progress bar on stderr for long operations (model loads). Draws only when stderr is a terminal,
// at most ~10 times a second; silent otherwise, so logs and tests stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace afd {

class Progress {
 public:
  Progress(std::string label, uint64_t total);
  ~Progress();
  void add(uint64_t n);
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  uint64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace afd
