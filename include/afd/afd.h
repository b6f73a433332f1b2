/* libafd: embed an afd engine in another program through a C API.
 *
 *   afd_engine* e = NULL;
 *   if (afd_engine_create_from_yaml_file("configs/pystdlib-moe.yaml", &e) != AFD_OK)
 *     fprintf(stderr, "%s\n", afd_last_error());
 *   afd_request_params p;
 *   afd_request_params_init(&p);                       // greedy, 16 new tokens
 *   int64_t id;
 *   afd_submit_text(e, "def add(a, b):", &p, NULL, NULL, &id);   // no callback: events are polled
 *   afd_event ev[16];
 *   size_t n = afd_poll(e, ev, 16, 1000);              // waits up to 1 s for events
 *   afd_engine_destroy(e);
 *
 * An engine runs its own driver thread. Every function is safe to call from any thread, except that a callback
 * must not destroy the engine that calls it. Failures return a status code; the sentence that says what went wrong
 * is afd_last_error() (per thread, valid until the calling thread's next libafd call). Nothing aborts on bad input.
 */
#ifndef AFD_AFD_H
#define AFD_AFD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum afd_status {
  AFD_OK = 0,
  AFD_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, an out-of-range parameter, a bad token id */
  AFD_ERR_CONFIG = 2,           /* the YAML config or the model it names cannot be used */
  AFD_ERR_NOT_FOUND = 3,        /* no request with this id is in flight */
  AFD_ERR_UNSUPPORTED = 4,      /* e.g. text without a tokenizer */
  AFD_ERR_INTERNAL = 5
} afd_status;

typedef enum afd_finish_reason {
  AFD_FINISH_NONE = 0,      /* more tokens follow */
  AFD_FINISH_LENGTH = 1,    /* max_new_tokens reached */
  AFD_FINISH_EOS = 2,       /* the model produced an end-of-sequence token */
  AFD_FINISH_CANCELLED = 3, /* afd_cancel */
  AFD_FINISH_REJECTED = 4,  /* the engine could not run it (e.g. longer than the KV pool) */
  AFD_FINISH_FAILED = 5     /* a backend failed while it ran (e.g. the FFN server went away); may succeed later */
} afd_finish_reason;

typedef struct afd_engine afd_engine;

typedef struct afd_request_params {
  int32_t max_new_tokens; /* default 16 */
  float temperature;      /* 0 = greedy (default) */
  int32_t top_k;          /* 0 = all */
  float top_p;            /* 1 = all */
  uint64_t seed;
  int32_t ignore_eos;     /* nonzero: keep generating after EOS */
} afd_request_params;

/* One event of a request: a token (token >= 0) and/or its end (finish != AFD_FINISH_NONE; token -1 when it ended
 * without a new token). Each request gets exactly one event with finish set, after all its tokens. */
typedef struct afd_event {
  int64_t request_id;
  int32_t token;
  afd_finish_reason finish;
} afd_event;

/* Called on the engine's driver thread; must return quickly. */
typedef void (*afd_token_callback)(void* user_data, const afd_event* event);

typedef struct afd_stats {
  int64_t requests_in_flight, running_sequences;
  int64_t kv_blocks_used, kv_blocks_total;
  int64_t steps, tokens;       /* totals since creation (tokens: prefill and decode) */
  double step_seconds_total, overlap;
  int32_t vocab_size, max_context, eos_token_id; /* eos_token_id: the first one, -1 when none */
} afd_stats;

void afd_request_params_init(afd_request_params* p);

/* Runtime YAML as afd-run --config reads it (model.path relative to the file's directory, the runtime section). */
afd_status afd_engine_create_from_yaml_file(const char* path, afd_engine** out);
/* The same from text; relative model paths are relative to base_dir (NULL: the current directory). */
afd_status afd_engine_create_from_yaml_string(const char* yaml, const char* base_dir, afd_engine** out);
/* Cancels what is in flight, stops the driver thread, frees everything. NULL is ignored. */
void afd_engine_destroy(afd_engine* e);

/* Queue a request. With a callback its events go there; without one (NULL) they are kept for afd_poll. */
afd_status afd_submit_ids(afd_engine* e, const int32_t* ids, size_t n_ids, const afd_request_params* p,
                          afd_token_callback cb, void* user_data, int64_t* request_id);
/* Text is encoded with the model's tokenizer (BOS added as the tokenizer says). */
afd_status afd_submit_text(afd_engine* e, const char* text, const afd_request_params* p, afd_token_callback cb,
                           void* user_data, int64_t* request_id);
afd_status afd_cancel(afd_engine* e, int64_t request_id);

/* Moves up to max_events queued events (of requests without a callback) into events, waiting up to timeout_ms
 * (0: do not wait, negative: forever) for the first. Returns how many were written. */
size_t afd_poll(afd_engine* e, afd_event* events, size_t max_events, int timeout_ms);

afd_status afd_get_stats(afd_engine* e, afd_stats* out);

/* Decodes ids to UTF-8 text (special tokens skipped) into buf (NUL-terminated, truncated to cap); *needed gets the
 * full length without the NUL. */
afd_status afd_detokenize(afd_engine* e, const int32_t* ids, size_t n_ids, char* buf, size_t cap, size_t* needed);

/* The message of this thread's last failed call ("" when none). */
const char* afd_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* AFD_AFD_H */
