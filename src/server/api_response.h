// The JSON bodies of completion responses, non-streamed and as server-sent-event chunks, in OpenAI's shapes:
// text_completion / chat.completion, and text_completion / chat.completion.chunk for streams.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace afd::server {

struct ResponseHead {
  bool chat = false;
  std::string id;       // "cmpl-N" or "chatcmpl-N"
  int64_t created = 0;  // unix seconds
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// Token ids of a choice or chunk, sent only when the request asked for them (return_token_ids).
using TokenIds = const std::vector<int32_t>*;

// The whole response of a non-streamed request.
std::string completion_body(const ResponseHead& h, const std::string& text, const char* finish_reason, Usage u,
                            TokenIds ids = nullptr);
// One SSE event ("data: {...}\n\n") carrying `text` (chat: as delta.content; with role when first) and, when
// finish_reason is given, the end of the choice.
std::string sse_chunk(const ResponseHead& h, const std::string& text, const char* finish_reason, bool first,
                      TokenIds ids = nullptr);
// The usage event of stream_options.include_usage (choices empty), and the terminator.
std::string sse_usage(const ResponseHead& h, Usage u);
inline const char* sse_done() { return "data: [DONE]\n\n"; }

}  // namespace afd::server
