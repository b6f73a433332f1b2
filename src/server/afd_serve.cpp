// afd-serve: an OpenAI-compatible HTTP server over one afd engine (see server.h). Loopback unless --host says
// otherwise; SIGTERM/SIGINT drain (no new requests, running ones finish) and exit 0.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "app/openmp_policy.h"
#include "app/prompt.h"
#include "app/runtime_flags.h"
#include "server/engine_setup.h"
#include "server/server.h"
#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace {

std::string default_model() {
  const char* env = std::getenv("AFD_DEFAULT_MODEL");
  return env && *env ? env : AFD_DEFAULT_MODEL;
}

}  // namespace

int main(int argc, char** argv) {
  afd::app::prefer_passive_openmp(argv);
  using afd::server::ServerOptions;
  std::string config, model_dir = default_model(), model_name, chat_template;
  int64_t read_timeout_ms = 30000;
  int default_max_tokens = 256;
  ServerOptions so;
  afd::app::RuntimeOptions ro;
  ro.show_progress = false;
  CLI::App app{"afd-serve: an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, "
               "/health, /metrics) over an afd engine."};
  app.add_option("--config", config,
                 "Runtime YAML (configs/*.yaml): model.path and the runtime section; flags given override it.");
  app.add_option("--model", model_dir,
                 "Checkpoint directory (config.json + safetensors + tokenizer.json). Default: the bundled "
                 "pystdlib-moe model ($AFD_DEFAULT_MODEL overrides where it is looked for).");
  app.add_option("--model-name", model_name,
                 "The model id clients must name (GET /v1/models); default: the checkpoint directory's name.");
  app.add_option("--host", so.host, "Address to listen on; the default is loopback only.");
  app.add_option("--port", so.port, "TCP port; 0 picks a free one (printed on stderr as 'listening on').");
  app.add_option("--api-key", so.api_key,
                 "Require 'Authorization: Bearer KEY' on every request but GET /health (401 otherwise).");
  app.add_option("--chat-template", chat_template,
                 "Chat template family for /v1/chat/completions when the tokenizer has none or another is wanted: "
                 "deepseek-v3, deepseek-r1, deepseek-v2, qwen3, mistral, mistral-legacy, llama2.");
  app.add_option("--default-max-tokens", default_max_tokens,
                 "Completion length when a request gives no max_tokens (capped by the context left).")
      ->check(CLI::PositiveNumber);
  app.add_option("--read-timeout-ms", read_timeout_ms,
                 "A request's headers and body must arrive within this many ms (else 408); idle keep-alive "
                 "connections are closed after it.")
      ->check(CLI::PositiveNumber);
  afd::app::add_runtime_flags(app, ro);
  CLI11_PARSE(app, argc, argv);
  try {
    afd::app::ModelSource src{model_dir, std::nullopt};
    if (!config.empty()) {
      const afd::RunConfig rc = afd::load_run_config(config);
      if (!app.count("--model")) src = afd::server::engine_setup(rc).model;
      afd::app::apply_runtime_config(rc, app, ro);
    }
    AFD_REQUIRE(!src.synthetic, "afd-serve needs a checkpoint with a tokenizer, not a synthetic model");
    const std::optional<afd::tok::Tokenizer> tk = afd::app::find_tokenizer(src.dir);
    AFD_REQUIRE(tk.has_value(), src.dir, " has no tokenizer.json; afd-serve needs one");
    afd::server::ModelInfo info;
    info.tokenizer = &*tk;
    info.name = model_name.empty() ? std::filesystem::path(src.dir).lexically_normal().filename().string() : model_name;
    if (info.name.empty()) info.name = std::filesystem::path(src.dir).parent_path().filename().string();
    if (!chat_template.empty()) {
      info.chat_family = afd::tok::chat_family_from_name(chat_template);
      AFD_REQUIRE(info.chat_family.has_value(), "--chat-template ", chat_template, " is not a known family");
    }
    auto driver = std::make_unique<afd::server::EngineDriver>(afd::app::make_engine(src, ro));
    info.max_context = driver->config().max_position_embeddings;
    info.kv_capacity = driver->kv_capacity_positions();
    info.vocab_size = driver->config().vocab_size;
    info.default_max_tokens = default_max_tokens;
    so.read_timeout = std::chrono::milliseconds(read_timeout_ms);
    afd::server::Server server(std::move(driver), info, so);
    std::fprintf(stderr, "afd-serve: model '%s' listening on %s:%d\n", info.name.c_str(), so.host.c_str(),
                 server.port());
    server.run(/*handle_signals=*/true);
    std::fprintf(stderr, "afd-serve: drained, exiting\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-serve: error: %s\n", e.what());
    return 1;
  }
}
