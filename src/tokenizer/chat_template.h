// Chat prompts for the supported model families, rendered by C++ code (no Jinja engine) exactly as transformers'
// apply_chat_template(messages, add_generation_prompt=...) renders the families' published templates.
// The family is detected from tokenizer_config.json's chat_template, or named explicitly:
//   deepseek-v3   DeepSeek-V3:  {bos}{system...}<｜User｜>u<｜Assistant｜>a<｜end▁of▁sentence｜>...<｜Assistant｜>
//   deepseek-r1   DeepSeek-R1:  as V3, assistant turns keep only the text after </think>, prompt adds "<think>\n"
//   deepseek-v2   DeepSeek-V2:  {bos}system\n\nUser: u\n\nAssistant: a{eos}...Assistant:
//   qwen3         Qwen3:        <|im_start|>role\ncontent<|im_end|>\n..., <think> handling of assistant turns
//   mistral       Mixtral-8x7B-Instruct (current): {bos} [INST] sys\n\nu [/INST] a{eos}
//   mistral-legacy Mistral/Mixtral (first release): {bos}[INST] u [/INST]a{eos}
//   llama2        Llama-2-chat: {bos}[INST] <<SYS>>\nsys\n<</SYS>>\n\nu [/INST] a {eos}
// Roles: "system", "user", "assistant" (and "tool" for deepseek-v3/r1 and qwen3). Tool calls are not rendered.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace afd::tok {

class Tokenizer;

struct ChatMessage {
  std::string role, content;
};

enum class ChatFamily { kDeepSeekV3, kDeepSeekR1, kDeepSeekV2, kQwen3, kMistral, kMistralLegacy, kLlama2 };

// The family whose template this is; nullopt when it is none of the supported ones.
std::optional<ChatFamily> detect_chat_family(std::string_view chat_template);
// "deepseek-v3", "deepseek-r1", "deepseek-v2", "qwen3", "mistral", "mistral-legacy", "llama2".
std::optional<ChatFamily> chat_family_from_name(std::string_view name);
std::string_view chat_family_name(ChatFamily family);

// Renders with the family's template; bos/eos are the tokenizer's bos_token/eos_token strings.
// Throws afd::Error for a role the template does not accept (as the template's raise_exception does).
std::string render_chat(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        std::string_view bos, std::string_view eos);

// Renders with the family detected from tokenizer.chat_template() (or `family` when given). Throws afd::Error when
// the tokenizer has no chat template or an unsupported one. Encode the result with add_special=false: the template
// already holds BOS where the model expects it.
std::string render_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt, std::optional<ChatFamily> family = std::nullopt);

}  // namespace afd::tok
