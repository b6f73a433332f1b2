// Chat templates: the fixture chats (DeepSeek-V3, Qwen3) and the other families against the renderings that the
// families' Jinja templates produce (llama.cpp's test-chat-template expectations, or worked out from the template).
#include "tokenizer/chat_template.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

using afd::test::tokenizer;
using afd::tok::ChatFamily;
using afd::tok::ChatMessage;
using Messages = std::vector<ChatMessage>;

namespace {

Messages messages_from_json(const nlohmann::json& j) {
  Messages m;
  for (const auto& x : j) m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  return m;
}

void check_fixture_chats(const std::string& name, ChatFamily family) {
  const auto& tok = tokenizer(name);
  CHECK(afd::tok::detect_chat_family(tok.chat_template()) == family);
  const auto fx = afd::test::tokenizer_fixture(name);
  REQUIRE(fx["chat"].size() >= 2);
  for (const auto& c : fx["chat"]) {
    INFO(name << " chat " << c["messages"].dump());
    const std::string rendered = afd::tok::render_chat(tok, messages_from_json(c["messages"]), true);
    CHECK(rendered == c["rendered"].get<std::string>());
    CHECK(tok.encode(rendered, false) == c["ids"].get<std::vector<int32_t>>());
  }
}

// The conversation of llama.cpp's chat-template tests.
const Messages kConversation = {{"system", "You are a helpful assistant"},
                                {"user", "Hello"},
                                {"assistant", "Hi there"},
                                {"user", "Who are you"},
                                {"assistant", "   I am an assistant   "},
                                {"user", "Another question"}};

}  // namespace

TEST_CASE("Chat: DeepSeek-V3 fixture chats render and encode exactly", "[tokenizer][chat]") {
  check_fixture_chats("deepseek_v3", ChatFamily::kDeepSeekV3);
}

TEST_CASE("Chat: Qwen3 fixture chats render and encode exactly", "[tokenizer][chat]") {
  check_fixture_chats("qwen3", ChatFamily::kQwen3);
}

TEST_CASE("Chat: DeepSeek-V2, Mistral and Llama-2 render as their Jinja templates do", "[tokenizer][chat]") {
  using afd::tok::render_chat;
  CHECK(render_chat(ChatFamily::kDeepSeekV2, kConversation, true, "", "<｜end▁of▁sentence｜>") ==
        "You are a helpful assistant\n\nUser: Hello\n\nAssistant: Hi there<｜end▁of▁sentence｜>User: Who are you\n\n"
        "Assistant:    I am an assistant   <｜end▁of▁sentence｜>User: Another question\n\nAssistant:");
  CHECK(render_chat(ChatFamily::kDeepSeekV2, {{"user", "Hi"}}, false, "<｜begin▁of▁sentence｜>", "E") ==
        "<｜begin▁of▁sentence｜>User: Hi\n\n");
  CHECK(render_chat(ChatFamily::kMistral, kConversation, true, "", "</s>") ==
        " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an "
        "assistant   </s> [INST] Another question [/INST]");
  CHECK(render_chat(ChatFamily::kLlama2, kConversation, true, "", "</s>") ==
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>[INST] Who are you "
        "[/INST] I am an assistant </s>[INST] Another question [/INST]");
  CHECK(render_chat(ChatFamily::kLlama2, {{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, true, "<s>", "</s>") ==
        "<s>[INST] a [/INST] b </s><s>[INST] c [/INST]");
  const Messages no_system(kConversation.begin() + 1, kConversation.end());
  CHECK(render_chat(ChatFamily::kMistralLegacy, no_system, true, "<s>", "</s>") ==
        "<s>[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another "
        "question [/INST]");
  // The [INST] templates raise on roles out of order or unknown.
  CHECK_THROWS_WITH(render_chat(ChatFamily::kMistralLegacy, kConversation, true, "", ""),
                    Catch::Contains("alternate user/assistant"));
  CHECK_THROWS_WITH(render_chat(ChatFamily::kMistral, {{"user", "a"}, {"user", "b"}}, true, "", ""),
                    Catch::Contains("alternate user/assistant"));
  CHECK_THROWS_AS(render_chat(ChatFamily::kLlama2, {{"tool", "a"}}, true, "", ""), afd::Error);
}

TEST_CASE("Chat: DeepSeek-R1 drops reasoning from past turns and opens <think>", "[tokenizer][chat]") {
  const Messages m = {{"system", "S1"}, {"system", "S2"}, {"user", "Q"}, {"assistant", "<think>\nhmm\n</think>\n\nA"},
                      {"user", "Q2"}};
  CHECK(afd::tok::render_chat(ChatFamily::kDeepSeekR1, m, true, "<B>", "") ==
        "<B>S1\n\nS2<｜User｜>Q<｜Assistant｜>\n\nA<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜><think>\n");
  CHECK(afd::tok::render_chat(ChatFamily::kDeepSeekV3, {{"user", "Q"}, {"tool", "r1"}, {"tool", "r2"}}, true, "", "") ==
        "<｜User｜>Q<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>r2"
        "<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
}

TEST_CASE("Chat: Qwen3 reasoning, tool responses and multiple system messages", "[tokenizer][chat]") {
  const auto& tok = tokenizer("qwen3");
  // A past assistant turn loses its reasoning; one after the last user query keeps it.
  const Messages m = {{"user", "Q1"},
                      {"assistant", "<think>\nold\n</think>\n\nA1"},
                      {"user", "Q2"},
                      {"assistant", "<think>\nnew\n</think>\n\nA2"}};
  CHECK(afd::tok::render_chat(tok, m, false) ==
        "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nnew\n</think>\n\nA2<|im_end|>\n");
  const Messages tools = {{"system", "S"}, {"user", "Q"}, {"assistant", "calling"}, {"tool", "r1"}, {"tool", "r2"},
                          {"system", "late"}};
  CHECK(afd::tok::render_chat(tok, tools, true) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\ncalling<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
        "</tool_response><|im_end|>\n<|im_start|>system\nlate<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("Chat: family detection and errors", "[tokenizer][chat]") {
  using afd::tok::detect_chat_family;
  CHECK(detect_chat_family("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' "
                           "+ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ "
                           "'Assistant:' }}{% endif %}") == ChatFamily::kDeepSeekV2);
  CHECK(detect_chat_family("{{- ' [INST] ' + message['content'] + ' [/INST]' }}") == ChatFamily::kMistral);
  CHECK(detect_chat_family("{{ '[INST] ' + message['content'] + ' [/INST]' }}") == ChatFamily::kMistralLegacy);
  CHECK(detect_chat_family("{{ '<<SYS>>\\n' }}{{ '[INST] ' + content.strip() + ' [/INST]' }}") == ChatFamily::kLlama2);
  CHECK(detect_chat_family("{{'<｜User｜>'}}{{'<｜Assistant｜><think>\\n'}}") == ChatFamily::kDeepSeekR1);
  CHECK_FALSE(detect_chat_family("{{ '<start_of_turn>' }}").has_value());
  CHECK(afd::tok::chat_family_from_name("qwen3") == ChatFamily::kQwen3);
  CHECK(afd::tok::chat_family_name(ChatFamily::kDeepSeekR1) == "deepseek-r1");
  CHECK_FALSE(afd::tok::chat_family_from_name("gemma").has_value());
  // pystdlib-moe declares no chat template: rendering needs an explicit family.
  const auto& py = tokenizer("pystdlib");
  CHECK_THROWS_WITH(afd::tok::render_chat(py, {{"user", "x"}}, true), Catch::Contains("has no chat_template"));
  CHECK(afd::tok::render_chat(py, {{"user", "x"}}, true, ChatFamily::kDeepSeekV2) == "<|bos|>User: x\n\nAssistant:");
}
