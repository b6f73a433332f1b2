#include "app/prompt.h"

#include <filesystem>
#include <sstream>

#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace afd::app {

std::optional<tok::Tokenizer> find_tokenizer(const std::string& model_dir) {
  const auto path = std::filesystem::path(model_dir) / "tokenizer.json";
  if (!std::filesystem::exists(path)) return std::nullopt;
  return tok::Tokenizer::load(path.string());
}

std::vector<int32_t> parse_id_list(const std::string& s, const char* flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    AFD_REQUIRE(pos > 0 && pos == item.size() && v >= 0 && v < (1ll << 31), flag, ": '", item,
                "' is not a token id (expected comma-separated non-negative integers)");
    ids.push_back(static_cast<int32_t>(v));
  }
  AFD_REQUIRE(!ids.empty(), flag, " is empty");
  return ids;
}

std::vector<int32_t> prompt_ids(const RunOptions& o, const ModelConfig& cfg, const std::optional<tok::Tokenizer>& tk) {
  AFD_REQUIRE(o.prompt_ids.empty() || o.prompt.empty(), "give --prompt or --prompt-ids, not both");
  AFD_REQUIRE(o.prompt_ids.size() <= 1, "several --prompt-ids need --engine afd");
  if (!o.prompt_ids.empty()) return parse_id_list(o.prompt_ids[0], "--prompt-ids");
  if (!o.prompt.empty() || o.chat) {
    AFD_REQUIRE(tk.has_value(), o.model, " has no tokenizer.json: give the prompt as --prompt-ids");
    if (!o.chat) return tk->encode(o.prompt, /*add_special=*/true);
    std::vector<tok::ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", o.prompt});
    return tk->encode(tok::render_chat(*tk, messages, /*add_generation_prompt=*/true), /*add_special=*/false);
  }
  AFD_REQUIRE(cfg.bos_token_id >= 0, o.model, ": the model has no bos_token_id; give --prompt or --prompt-ids");
  return {cfg.bos_token_id};
}

}  // namespace afd::app
