// Architecture presets of the published models, as the config.json each checkpoint ships (MODEL_SPEC.md values),
// so synthetic models go through the same parsing and validation as real checkpoints.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace afd {

// Names: deepseek-v3 (V3/R1 671B, FP8), deepseek-v2 (236B), deepseek-v2-lite (16B), qwen3-30b-a3b, mixtral-8x7b.
std::vector<std::string> preset_names();
// The preset's config.json; throws afd::Error listing the names for an unknown one.
nlohmann::json preset_config(const std::string& name);

}  // namespace afd
