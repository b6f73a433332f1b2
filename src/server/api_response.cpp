#include "server/api_response.h"

#include <nlohmann/json.hpp>

namespace afd::server {

using nlohmann::json;

namespace {

json usage_json(Usage u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json head_json(const ResponseHead& h, const char* object) {
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

json reason(const char* finish_reason) { return finish_reason ? json(finish_reason) : json(nullptr); }

// Decoded text is valid UTF-8 by the stream decoder's invariant; `replace` guards the serializer regardless.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string completion_body(const ResponseHead& h, const std::string& text, const char* finish_reason, Usage u,
                            TokenIds ids) {
  json j = head_json(h, h.chat ? "chat.completion" : "text_completion");
  json choice = {{"index", 0}, {"finish_reason", reason(finish_reason)}, {"logprobs", nullptr}};
  if (h.chat)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  if (ids) choice["token_ids"] = *ids;
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(u);
  return dump(j);
}

std::string sse_chunk(const ResponseHead& h, const std::string& text, const char* finish_reason, bool first,
                      TokenIds ids) {
  json j = head_json(h, h.chat ? "chat.completion.chunk" : "text_completion");
  json choice = {{"index", 0}, {"finish_reason", reason(finish_reason)}, {"logprobs", nullptr}};
  if (h.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  if (ids) choice["token_ids"] = *ids;
  j["choices"] = json::array({choice});
  return "data: " + dump(j) + "\n\n";
}

std::string sse_usage(const ResponseHead& h, Usage u) {
  json j = head_json(h, h.chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = json::array();
  j["usage"] = usage_json(u);
  return "data: " + dump(j) + "\n\n";
}

}  // namespace afd::server
