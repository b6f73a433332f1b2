// The one error-handling header of afd.
//
// Every failure a user can cause (a bad file, a bad config field, a bad request) is reported by throwing
// afd::Error with one sentence that names the file, field or tensor. Internal invariants use AFD_CHECK, which adds
// file:line. Nothing in afd aborts on bad input; callers at the process edge (CLI, server) catch afd::Error.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace afd {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throws afd::Error whose message is the concatenation of the arguments (anything with operator<<).
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace afd

// A user-facing check: the message should be a sentence that names what was wrong.
#define AFD_REQUIRE(cond, ...)                 \
  do {                                         \
    if (!(cond)) ::afd::fail(__VA_ARGS__);     \
  } while (0)

// An internal invariant: failing means a bug in afd, reported with the location and the condition.
#define AFD_CHECK(cond, ...)                                                                          \
  do {                                                                                                \
    if (!(cond))                                                                                      \
      ::afd::fail("internal error at ", __FILE__, ":", __LINE__, ": check `", #cond, "` failed. ", \
                  ##__VA_ARGS__);                                                                     \
  } while (0)

// CUDA, cuBLAS and NCCL calls (only in targets compiled with AFD_CUDA): every call is checked, failures throw
// afd::Error with the call, file:line and the library's own message.
#ifdef AFD_CUDA
#include <cuda_runtime_api.h>
#define AFD_CUDA_CHECK(expr)                                                                       \
  do {                                                                                             \
    const cudaError_t afd_err_ = (expr);                                                           \
    if (afd_err_ != cudaSuccess)                                                                   \
      ::afd::fail("CUDA error at ", __FILE__, ":", __LINE__, ": ", #expr, " returned ",           \
                  cudaGetErrorName(afd_err_), " (", cudaGetErrorString(afd_err_), ")");           \
  } while (0)
#endif
