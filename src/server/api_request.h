// Parsing and validating the body of POST /v1/completions and /v1/chat/completions into an engine request.
// Accepted fields (others are ignored, as OpenAI clients send many): model, prompt (string, [string] or [ids]) or
// messages ([{role, content: string | [{type: "text", text}]}]), max_tokens (max_completion_tokens), temperature,
// top_p, top_k, seed, stop (string or list of up to 4), n (1 only), stream, stream_options.include_usage,
// ignore_eos, return_token_ids (an extension: each choice or chunk also carries the ids of its tokens). Every problem throws ApiError 400 naming the field (404 for an unknown model).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/sequence.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace afd::server {

// What the parser needs to know about the model being served.
struct ModelInfo {
  std::string name;                        // the id in /v1/models; requests naming another model get 404
  const tok::Tokenizer* tokenizer = nullptr;
  std::optional<tok::ChatFamily> chat_family;  // overrides the tokenizer's template detection
  int max_context = 0;                     // prompt + completion positions a sequence may have
  int64_t kv_capacity = 0;                 // positions the KV pool holds in all
  int vocab_size = 0;
  int default_max_tokens = 256;            // when the request gives none (capped by the context left)
};

struct CompletionJob {
  bool chat = false, stream = false, include_usage = false, return_token_ids = false;
  engine::GenRequest gen;                  // prompt ids, sampling, max_new_tokens
  std::vector<std::string> stop;
};

constexpr size_t kMaxBodyBytes = 1 << 20;  // larger bodies get 413

CompletionJob parse_completion_request(const std::string& body, bool chat, const ModelInfo& m);

}  // namespace afd::server
