#include "server/api_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace afd::server {

using nlohmann::json;

std::string error_body(const std::string& message, const std::string& type, const std::string& param,
                       const std::string& code) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message, const std::string& code = "") {
  throw ApiError(400, message, "invalid_request_error", param, code);
}

// The field `key` of `j` when present and not null.
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& j, const char* key, double lo, double hi) {
  const json* v = field(j, key);
  if (!v) return std::numeric_limits<double>::quiet_NaN();
  if (!v->is_number()) bad(key, std::string("'") + key + "' must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi))
    bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

std::optional<int64_t> integer(const json& j, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) bad(key, std::string("'") + key + "' must be an integer");
  const bool neg = v->is_number_integer() && !v->is_number_unsigned() && v->get<int64_t>() < 0;
  if (!neg && v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(key, std::string("'") + key + "' must be at most " + std::to_string(hi));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

bool boolean(const json& j, const char* key) {
  const json* v = field(j, key);
  if (!v) return false;
  if (!v->is_boolean()) bad(key, std::string("'") + key + "' must be a boolean");
  return v->get<bool>();
}

std::string text_of(const json& v, const std::string& param) {
  if (!v.is_string()) bad(param, "'" + param + "' must be a string");
  return v.get<std::string>();
}

// Encodes text; the tokenizer rejects invalid UTF-8 with afd::Error.
std::vector<int32_t> encode(const ModelInfo& m, const std::string& text, bool add_special, const char* param) {
  if (!m.tokenizer) bad(param, "the model has no tokenizer.json: give the prompt as token ids");
  try {
    return m.tokenizer->encode(text, add_special);
  } catch (const Error& e) {
    bad(param, e.what());
  }
}

std::vector<int32_t> completion_prompt(const json& j, const ModelInfo& m) {
  const json* p = field(j, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  if (p->is_string()) return encode(m, p->get<std::string>(), true, "prompt");
  if (!p->is_array() || p->empty()) bad("prompt", "'prompt' must be a string, a list of one string or token ids");
  if ((*p)[0].is_string()) {
    if (p->size() != 1) bad("prompt", "only one prompt per request is supported", "unsupported_value");
    return encode(m, (*p)[0].get<std::string>(), true, "prompt");
  }
  std::vector<int32_t> ids;
  for (const json& v : *p) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= m.vocab_size)
      bad("prompt", "token ids in 'prompt' must be integers in [0, " + std::to_string(m.vocab_size) + ")");
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return ids;
}

std::vector<int32_t> chat_prompt(const json& j, const ModelInfo& m) {
  const json* msgs = field(j, "messages");
  if (!msgs || !msgs->is_array() || msgs->empty()) bad("messages", "'messages' must be a non-empty list");
  std::vector<tok::ChatMessage> chat;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& msg = (*msgs)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) bad(where, "'" + where + "' must be an object");
    const json* role = field(msg, "role");
    if (!role) bad(where + ".role", "'" + where + ".role' is required");
    tok::ChatMessage cm{text_of(*role, where + ".role"), ""};
    const json* content = field(msg, "content");
    if (content && content->is_array()) {
      for (const json& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text"))
          bad(where + ".content", "only text content parts are supported");
        cm.content += text_of(part["text"], where + ".content.text");
      }
    } else if (content) {
      cm.content = text_of(*content, where + ".content");
    }
    chat.push_back(std::move(cm));
  }
  if (!m.tokenizer) bad("messages", "the model has no tokenizer.json, so chat is not available");
  std::string text;
  try {
    text = tok::render_chat(*m.tokenizer, chat, /*add_generation_prompt=*/true, m.chat_family);
  } catch (const Error& e) {
    bad("messages", e.what());
  }
  return encode(m, text, /*add_special=*/false, "messages");
}

std::vector<std::string> stop_strings(const json& j) {
  const json* s = field(j, "stop");
  if (!s) return {};
  if (s->is_string()) return {s->get<std::string>()};
  if (!s->is_array() || s->size() > 4) bad("stop", "'stop' must be a string or a list of at most 4 strings");
  std::vector<std::string> out;
  for (const json& v : *s) out.push_back(text_of(v, "stop"));
  return out;
}

}  // namespace

CompletionJob parse_completion_request(const std::string& body, bool chat, const ModelInfo& m) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    bad("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad("", "the body must be a JSON object");
  try {
    if (const json* model = field(j, "model")) {
      if (text_of(*model, "model") != m.name)
        throw ApiError(404, "The model '" + model->get<std::string>() + "' does not exist; this server has '" +
                                m.name + "'",
                       "invalid_request_error", "model", "model_not_found");
    }
    if (integer(j, "n", 1, 1 << 20).value_or(1) != 1) bad("n", "only n = 1 is supported", "unsupported_value");
    CompletionJob job;
    job.chat = chat;
    job.stream = boolean(j, "stream");
    if (const json* so = field(j, "stream_options")) {
      if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
      job.include_usage = boolean(*so, "include_usage");
    }
    job.gen.prompt = chat ? chat_prompt(j, m) : completion_prompt(j, m);
    if (job.gen.prompt.empty()) bad(chat ? "messages" : "prompt", "the prompt encodes to no tokens");
    const int64_t plen = static_cast<int64_t>(job.gen.prompt.size());
    if (plen >= m.max_context)
      bad(chat ? "messages" : "prompt",
          "the prompt has " + std::to_string(plen) + " tokens; this model's context is " +
              std::to_string(m.max_context) + " tokens (prompt and completion together)",
          "context_length_exceeded");
    std::optional<int64_t> max_tokens = integer(j, "max_tokens", 1, std::numeric_limits<int32_t>::max());
    if (!max_tokens) max_tokens = integer(j, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
    const int64_t room = m.max_context - plen;
    if (max_tokens && *max_tokens > room)
      bad("max_tokens",
          "max_tokens " + std::to_string(*max_tokens) + " with a prompt of " + std::to_string(plen) +
              " tokens exceeds this model's context of " + std::to_string(m.max_context) + " tokens",
          "context_length_exceeded");
    job.gen.max_new_tokens = static_cast<int>(max_tokens.value_or(std::min<int64_t>(m.default_max_tokens, room)));
    if (plen + job.gen.max_new_tokens > m.kv_capacity)
      bad("max_tokens", "prompt and max_tokens need " + std::to_string(plen + job.gen.max_new_tokens) +
                            " KV positions; the server's KV pool holds " + std::to_string(m.kv_capacity));
    const double t = number(j, "temperature", 0, 2), p = number(j, "top_p", 0, 1);
    if (!std::isnan(t)) job.gen.sampling.temperature = static_cast<float>(t);
    if (!std::isnan(p)) {
      if (p <= 0) bad("top_p", "'top_p' must be in (0, 1]");
      job.gen.sampling.top_p = static_cast<float>(p);
    }
    job.gen.sampling.top_k = static_cast<int>(integer(j, "top_k", -1, 1 << 30).value_or(0));
    if (job.gen.sampling.top_k < 0) job.gen.sampling.top_k = 0;  // vLLM's "-1 = all"
    const json* seed = field(j, "seed");
    if (seed && !seed->is_number_integer()) bad("seed", "'seed' must be an integer");
    if (seed) job.gen.sampling.seed = seed->get<uint64_t>();
    job.gen.ignore_eos = boolean(j, "ignore_eos");
    job.return_token_ids = boolean(j, "return_token_ids");
    job.stop = stop_strings(j);
    return job;
  } catch (const json::exception& e) {
    bad("", std::string("a field has the wrong type: ") + e.what());
  }
}

}  // namespace afd::server
