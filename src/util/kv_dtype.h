// Element types of the KV cache, their names (flags, YAML configs) and sizes: one place for the config parser, the
// cache and the planners.
#pragma once

#include <string>

#include "util/error.h"

namespace afd {

enum class KvDtype { kBf16, kFp8E4m3 };

inline const char* kv_dtype_name(KvDtype d) { return d == KvDtype::kBf16 ? "bf16" : "fp8_e4m3"; }
inline int kv_dtype_bytes(KvDtype d) { return d == KvDtype::kBf16 ? 2 : 1; }

// "bf16", "fp8_e4m3" (or "fp8"); anything else fails naming `what` (a flag, or a config file and key) and `s`.
inline KvDtype parse_kv_dtype(const std::string& s, const std::string& what) {
  if (s == "bf16") return KvDtype::kBf16;
  if (s == "fp8_e4m3" || s == "fp8") return KvDtype::kFp8E4m3;
  fail(what, " = '", s, "' is not bf16 or fp8_e4m3");
}

}  // namespace afd
