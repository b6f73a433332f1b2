#include "tokenizer/chat_template.h"

#include <array>
#include <utility>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace afd::tok {
namespace {

using Messages = std::vector<ChatMessage>;

constexpr std::array<std::pair<std::string_view, ChatFamily>, 7> kNames{{
    {"deepseek-v3", ChatFamily::kDeepSeekV3},
    {"deepseek-r1", ChatFamily::kDeepSeekR1},
    {"deepseek-v2", ChatFamily::kDeepSeekV2},
    {"qwen3", ChatFamily::kQwen3},
    {"mistral", ChatFamily::kMistral},
    {"mistral-legacy", ChatFamily::kMistralLegacy},
    {"llama2", ChatFamily::kLlama2},
}};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// Python's str.split(sep)[-1] / [0].
std::string_view after_last(std::string_view s, std::string_view sep) {
  const size_t at = s.rfind(sep);
  return at == std::string_view::npos ? s : s.substr(at + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) { return s.substr(0, s.find(sep)); }

// Python's lstrip/rstrip/strip with an explicit character ('\n' in the Qwen3 template).
std::string_view lstrip(std::string_view s, char c) { return s.substr(std::min(s.find_first_not_of(c), s.size())); }
std::string_view rstrip(std::string_view s, char c) { return s.substr(0, s.find_last_not_of(c) + 1); }
std::string_view strip(std::string_view s, char c) { return lstrip(rstrip(s, c), c); }

// Python's str.strip() (whitespace as str.isspace sees it).
std::string_view py_strip(std::string_view s) {
  auto space = [](char32_t c) { return is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F); };
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t next = b;
    if (!space(next_codepoint(s, next))) break;
    b = next;
  }
  while (e > b && space(prev_codepoint(s, e))) {
    do --e;
    while ((static_cast<uint8_t>(s[e]) & 0xC0) == 0x80);
  }
  return s.substr(b, e - b);
}

std::string deepseek_v3(const Messages& msgs, bool gen, std::string_view bos, bool r1) {
  std::string out(bos);
  bool first_system = true;
  for (const auto& m : msgs) {
    if (m.role != "system") continue;
    if (!first_system) out += "\n\n";
    out += m.content;
    first_system = false;
  }
  bool is_tool = false, output_first = true;
  for (const auto& m : msgs) {
    if (m.role == "user") {
      is_tool = false;
      out += "<｜User｜>" + m.content;
    } else if (m.role == "assistant") {
      if (is_tool) {
        out += "<｜tool▁outputs▁end｜>" + m.content + "<｜end▁of▁sentence｜>";
        is_tool = false;
      } else {
        const std::string_view content = r1 ? after_last(m.content, "</think>") : std::string_view(m.content);
        out.append("<｜Assistant｜>").append(content).append("<｜end▁of▁sentence｜>");
      }
    } else if (m.role == "tool") {
      is_tool = true;
      out += output_first ? "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" : "\n<｜tool▁output▁begin｜>";
      out += m.content + "<｜tool▁output▁end｜>";
      output_first = false;
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (gen && !is_tool) out += r1 ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>";
  return out;
}

std::string deepseek_v2(const Messages& msgs, bool gen, std::string_view bos, std::string_view eos) {
  std::string out(bos);
  for (const auto& m : msgs) {
    if (m.role == "user") out += "User: " + m.content + "\n\n";
    else if (m.role == "assistant") out.append("Assistant: ").append(m.content).append(eos);
    else if (m.role == "system") out += m.content + "\n\n";
  }
  if (gen) out += "Assistant:";
  return out;
}

std::string qwen3(const Messages& msgs, bool gen) {
  std::string out;
  const size_t n = msgs.size();
  if (n > 0 && msgs[0].role == "system") out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  // The last user turn that is not a wrapped tool response; assistant turns after it keep their reasoning.
  size_t last_query = n - 1;
  for (size_t k = n; k-- > 0;) {
    const std::string& c = msgs[k].content;
    const bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (msgs[k].role == "user" && !tool_response) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = msgs[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string_view content = m.content, reasoning;
      if (contains(m.content, "</think>")) {
        content = lstrip(after_last(m.content, "</think>"), '\n');
        reasoning = lstrip(after_last(rstrip(before_first(m.content, "</think>"), '\n'), "<think>"), '\n');
      }
      out += "<|im_start|>assistant\n";
      if (n > 0 && i > last_query && (i + 1 == n || !reasoning.empty()))
        out.append("<think>\n").append(strip(reasoning, '\n')).append("\n</think>\n\n").append(lstrip(content, '\n'));
      else
        out.append(content);
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (i + 1 == n || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// The [INST] families: an optional leading system message, then strictly alternating user/assistant turns.
std::string inst(ChatFamily f, const Messages& msgs, std::string_view bos, std::string_view eos) {
  const bool has_system = !msgs.empty() && msgs[0].role == "system" && f != ChatFamily::kMistralLegacy;
  const std::string_view system = has_system ? std::string_view(msgs[0].content) : std::string_view();
  std::string out(f == ChatFamily::kLlama2 ? "" : bos);
  for (size_t i = has_system ? 1 : 0, k = 0; i < msgs.size(); ++i, ++k) {
    const ChatMessage& m = msgs[i];
    AFD_REQUIRE((m.role == "user") == (k % 2 == 0), "The chat template (", chat_family_name(f),
                ") requires conversation roles to alternate user/assistant/user/assistant/... after an optional "
                "system message, but message ", i, " has role '", m.role, "'.");
    AFD_REQUIRE(m.role == "user" || m.role == "assistant", "The chat template (", chat_family_name(f),
                ") supports only user and assistant roles after an optional system message, not '", m.role, "'.");
    const bool user = m.role == "user";
    if (f == ChatFamily::kMistral) {
      if (user) out.append(" [INST] ").append(k == 0 && has_system ? std::string(system) + "\n\n" : "")
                    .append(m.content).append(" [/INST]");
      else out.append(" ").append(m.content).append(eos);
    } else if (f == ChatFamily::kMistralLegacy) {
      if (user) out += "[INST] " + m.content + " [/INST]";
      else out.append(m.content).append(eos);
    } else {  // kLlama2
      const std::string content =
          k == 0 && has_system ? "<<SYS>>\n" + std::string(system) + "\n<</SYS>>\n\n" + m.content : m.content;
      if (user) out.append(bos).append("[INST] ").append(py_strip(content)).append(" [/INST]");
      else out.append(" ").append(py_strip(content)).append(" ").append(eos);
    }
  }
  return out;
}

}  // namespace

std::optional<ChatFamily> detect_chat_family(std::string_view t) {
  if (contains(t, "<｜User｜>") && contains(t, "<｜Assistant｜>"))
    return contains(t, "<｜Assistant｜><think>") ? ChatFamily::kDeepSeekR1 : ChatFamily::kDeepSeekV3;
  if (contains(t, "'User: '") && contains(t, "'Assistant:'")) return ChatFamily::kDeepSeekV2;
  if (contains(t, "<|im_start|>") && contains(t, "<think>")) return ChatFamily::kQwen3;
  if (contains(t, "[INST]")) {
    if (contains(t, "<<SYS>>")) return ChatFamily::kLlama2;
    return contains(t, "' [INST] '") ? ChatFamily::kMistral : ChatFamily::kMistralLegacy;
  }
  return std::nullopt;
}

std::optional<ChatFamily> chat_family_from_name(std::string_view name) {
  for (const auto& [n, f] : kNames)
    if (n == name) return f;
  return std::nullopt;
}

std::string_view chat_family_name(ChatFamily family) {
  for (const auto& [n, f] : kNames)
    if (f == family) return n;
  return "?";
}

std::string render_chat(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        std::string_view bos, std::string_view eos) {
  switch (family) {
    case ChatFamily::kDeepSeekV3: return deepseek_v3(messages, add_generation_prompt, bos, false);
    case ChatFamily::kDeepSeekR1: return deepseek_v3(messages, add_generation_prompt, bos, true);
    case ChatFamily::kDeepSeekV2: return deepseek_v2(messages, add_generation_prompt, bos, eos);
    case ChatFamily::kQwen3: return qwen3(messages, add_generation_prompt);
    default: return inst(family, messages, bos, eos);  // [INST] templates have no generation prompt
  }
}

std::string render_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::optional<ChatFamily> family) {
  if (!family) {
    AFD_REQUIRE(!tokenizer.chat_template().empty(), "The tokenizer ", tokenizer.path(),
                " has no chat_template in its tokenizer_config.json, so it cannot render a chat; name a chat family "
                "explicitly (deepseek-v3, deepseek-r1, deepseek-v2, qwen3, mistral, mistral-legacy, llama2).");
    family = detect_chat_family(tokenizer.chat_template());
    AFD_REQUIRE(family.has_value(), "The chat_template of ", tokenizer.path(),
                " is not one afd can render (supported: DeepSeek-V3/R1, DeepSeek-V2, Qwen3, Mistral/Mixtral, "
                "Llama-2); name a chat family explicitly.");
  }
  return render_chat(*family, messages, add_generation_prompt, tokenizer.bos_token(), tokenizer.eos_token());
}

}  // namespace afd::tok
