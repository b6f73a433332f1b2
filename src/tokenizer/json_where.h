// Error context for tokenizer JSON: which file and which field a value came from, so that every load error is one
// sentence naming both ("/m/tokenizer.json: field 'model.merges' is missing.").
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "util/error.h"

namespace afd::tok {

using nlohmann::json;

struct JsonWhere {
  std::string file;
  std::string path;  // dotted field path, "" for the document root

  JsonWhere field(std::string_view key) const {
    return {file, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  JsonWhere index(size_t i) const { return {file, path + "[" + std::to_string(i) + "]"}; }

  template <typename... Args>
  [[noreturn]] void fail(Args&&... args) const {
    if (path.empty()) afd::fail(file, ": ", std::forward<Args>(args)..., ".");
    afd::fail(file, ": field '", path, "' ", std::forward<Args>(args)..., ".");
  }
};

// j[key], which must exist and not be null.
inline const json& json_require(const json& j, const JsonWhere& w, std::string_view key) {
  if (!j.is_object()) w.fail("is not a JSON object");
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) w.field(key).fail("is missing");
  return *it;
}

inline std::string json_string(const json& j, const JsonWhere& w, std::string_view key) {
  const json& v = json_require(j, w, key);
  if (!v.is_string()) w.field(key).fail("is not a string");
  return v.get<std::string>();
}

// j[key] as a bool, or def when absent or null.
inline bool json_bool(const json& j, const JsonWhere& w, std::string_view key, bool def) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) w.field(key).fail("is not a boolean");
  return it->get<bool>();
}

// The "type" of a tokenizer component object.
inline std::string json_type(const json& j, const JsonWhere& w) { return json_string(j, w, "type"); }

}  // namespace afd::tok
