// Turning afd-run's prompt options into token ids, and ids back into text, with the model directory's tokenizer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app/run_options.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace afd::app {

// The tokenizer in `model_dir` (tokenizer.json), or nullopt when it has none.
std::optional<tok::Tokenizer> find_tokenizer(const std::string& model_dir);

// The prompt ids: --prompt-ids; or --prompt text (with --chat: rendered by the chat template); or the model's BOS.
std::vector<int32_t> prompt_ids(const RunOptions& o, const ModelConfig& cfg, const std::optional<tok::Tokenizer>& tk);

std::vector<int32_t> parse_id_list(const std::string& s, const char* flag);

}  // namespace afd::app
