/* Embedding afd from C: load the engine a runtime YAML names, generate for a prompt while printing text as it
 * arrives (polling), then run a second request through a callback and cancel nothing.
 *   embed configs/pystdlib-moe.yaml ["prompt"]                                                                  */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "afd/afd.h"

static const char* finish_name(afd_finish_reason r) {
  switch (r) {
    case AFD_FINISH_LENGTH: return "length";
    case AFD_FINISH_EOS: return "eos";
    case AFD_FINISH_CANCELLED: return "cancelled";
    case AFD_FINISH_REJECTED: return "rejected";
    default: return "none";
  }
}

/* Counts a request's tokens; called on the engine's thread. */
static void count_tokens(void* user, const afd_event* ev) {
  if (ev->token >= 0) ++*(int*)user;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CONFIG.yaml [PROMPT]\n", argv[0]);
    return 2;
  }
  const char* prompt = argc > 2 ? argv[2] : "def fibonacci(n):";
  afd_engine* engine = NULL;
  if (afd_engine_create_from_yaml_file(argv[1], &engine) != AFD_OK) {
    fprintf(stderr, "embed: %s\n", afd_last_error());
    return 1;
  }
  afd_request_params params;
  afd_request_params_init(&params);
  params.max_new_tokens = 32;
  int64_t id = 0;
  if (afd_submit_text(engine, prompt, &params, NULL, NULL, &id) != AFD_OK) {
    fprintf(stderr, "embed: %s\n", afd_last_error());
    afd_engine_destroy(engine);
    return 1;
  }
  int32_t tokens[64];
  size_t n_tokens = 0;
  afd_finish_reason finish = AFD_FINISH_NONE;
  while (finish == AFD_FINISH_NONE) {
    afd_event events[16];
    const size_t n = afd_poll(engine, events, 16, 10000);
    if (n == 0) {
      fprintf(stderr, "embed: no event within 10 s\n");
      afd_engine_destroy(engine);
      return 1;
    }
    for (size_t i = 0; i < n; ++i) {
      if (events[i].token >= 0 && n_tokens < 64) tokens[n_tokens++] = events[i].token;
      if (events[i].finish != AFD_FINISH_NONE) finish = events[i].finish;
    }
  }
  char text[4096];
  size_t needed = 0;
  afd_detokenize(engine, tokens, n_tokens, text, sizeof text, &needed);
  printf("%s%s\n", prompt, text);

  int counted = 0;
  int64_t second = 0;
  params.max_new_tokens = 8;
  afd_submit_text(engine, prompt, &params, count_tokens, &counted, &second);
  afd_stats stats;
  for (;;) { /* wait for the callback request: the engine reports nothing in flight */
    afd_get_stats(engine, &stats);
    if (stats.requests_in_flight == 0) break;
    const struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  printf("finish: %s, %zu tokens; callback request: %d tokens; %lld engine steps, KV blocks in use %lld of %lld\n",
         finish_name(finish), n_tokens, counted, (long long)stats.steps, (long long)stats.kv_blocks_used,
         (long long)stats.kv_blocks_total);
  afd_engine_destroy(engine);
  return 0;
}
