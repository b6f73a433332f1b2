// libafd's C API (include/afd/afd.h) over the EngineDriver: every entry point catches every exception and turns it
// into a status code plus a per-thread message; nothing escapes into C.
#include "afd/afd.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "app/prompt.h"
#include "server/engine_driver.h"
#include "server/engine_setup.h"
#include "util/error.h"

struct afd_engine {
  std::unique_ptr<afd::server::EngineDriver> driver;
  std::optional<afd::tok::Tokenizer> tokenizer;
  std::mutex mu;  // guards polled
  std::condition_variable cv;
  std::deque<afd_event> polled;  // events of requests submitted without a callback, in delivery order
};

namespace {

thread_local std::string g_last_error;

afd_status set_error(afd_status s, const std::string& msg) {
  g_last_error = msg;
  return s;
}

// Runs f, mapping exceptions to status codes: afd::Error is the caller's input (or config), anything else internal.
template <typename F>
afd_status guarded(afd_status input_error, F&& f) {
  g_last_error.clear();
  try {
    return f();
  } catch (const afd::Error& e) {
    return set_error(input_error, e.what());
  } catch (const std::exception& e) {
    return set_error(AFD_ERR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return set_error(AFD_ERR_INTERNAL, "internal error: unknown exception");
  }
}

afd_status create(const afd::RunConfig& rc, afd_engine** out) {
  const afd::server::EngineSetup s = afd::server::engine_setup(rc);
  auto e = std::make_unique<afd_engine>();
  if (!s.model.synthetic) e->tokenizer = afd::app::find_tokenizer(s.model.dir);
  e->driver = std::make_unique<afd::server::EngineDriver>(afd::app::make_engine(s.model, s.runtime));
  *out = e.release();
  return AFD_OK;
}

afd_status submit(afd_engine* e, std::vector<int32_t> ids, const afd_request_params* p, afd_token_callback cb,
                  void* user, int64_t* request_id) {
  afd::engine::GenRequest r;
  r.prompt = std::move(ids);
  afd_request_params d;
  afd_request_params_init(&d);
  if (!p) p = &d;
  r.max_new_tokens = p->max_new_tokens;
  r.sampling.temperature = p->temperature;
  r.sampling.top_k = p->top_k;
  r.sampling.top_p = p->top_p;
  r.sampling.seed = p->seed;
  r.ignore_eos = p->ignore_eos != 0;
  AFD_REQUIRE(r.max_new_tokens >= 1, "max_new_tokens ", r.max_new_tokens, " must be at least 1");
  const int64_t ctx = e->driver->config().max_position_embeddings;
  AFD_REQUIRE(static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens <= ctx, "prompt (", r.prompt.size(),
              " tokens) + max_new_tokens (", r.max_new_tokens, ") exceed the model's context of ", ctx);
  afd::server::EventFn fn = [e, cb, user](const afd::server::TokenEvent& ev) {
    const afd_event out{ev.request_id, ev.token, static_cast<afd_finish_reason>(ev.finish)};
    if (cb) {
      cb(user, &out);
      return;
    }
    std::lock_guard<std::mutex> l(e->mu);
    e->polled.push_back(out);
    e->cv.notify_all();
  };
  const int64_t id = e->driver->submit(std::move(r), std::move(fn));
  if (request_id) *request_id = id;
  return AFD_OK;
}

}  // namespace

extern "C" {

void afd_request_params_init(afd_request_params* p) {
  if (!p) return;
  *p = afd_request_params{16, 0.0f, 0, 1.0f, 0, 0};
}

afd_status afd_engine_create_from_yaml_file(const char* path, afd_engine** out) {
  if (!path || !out) return set_error(AFD_ERR_INVALID_ARGUMENT, "path and out must not be NULL");
  *out = nullptr;
  return guarded(AFD_ERR_CONFIG, [&] { return create(afd::load_run_config(path), out); });
}

afd_status afd_engine_create_from_yaml_string(const char* yaml, const char* base_dir, afd_engine** out) {
  if (!yaml || !out) return set_error(AFD_ERR_INVALID_ARGUMENT, "yaml and out must not be NULL");
  *out = nullptr;
  return guarded(AFD_ERR_CONFIG, [&] {
    const std::string base = base_dir ? base_dir : std::filesystem::current_path().string();
    return create(afd::parse_run_config(yaml, "<yaml string>", base), out);
  });
}

void afd_engine_destroy(afd_engine* e) {
  if (!e) return;
  try {
    e->driver->cancel_all();
    e->driver->stop();
  } catch (...) {
  }
  delete e;
}

afd_status afd_submit_ids(afd_engine* e, const int32_t* ids, size_t n_ids, const afd_request_params* p,
                          afd_token_callback cb, void* user_data, int64_t* request_id) {
  if (!e || (!ids && n_ids)) return set_error(AFD_ERR_INVALID_ARGUMENT, "engine and ids must not be NULL");
  return guarded(AFD_ERR_INVALID_ARGUMENT,
                 [&] { return submit(e, std::vector<int32_t>(ids, ids + n_ids), p, cb, user_data, request_id); });
}

afd_status afd_submit_text(afd_engine* e, const char* text, const afd_request_params* p, afd_token_callback cb,
                           void* user_data, int64_t* request_id) {
  if (!e || !text) return set_error(AFD_ERR_INVALID_ARGUMENT, "engine and text must not be NULL");
  if (!e->tokenizer) return set_error(AFD_ERR_UNSUPPORTED, "the model has no tokenizer.json: submit token ids");
  return guarded(AFD_ERR_INVALID_ARGUMENT, [&] {
    return submit(e, e->tokenizer->encode(text, /*add_special=*/true), p, cb, user_data, request_id);
  });
}

afd_status afd_cancel(afd_engine* e, int64_t request_id) {
  if (!e) return set_error(AFD_ERR_INVALID_ARGUMENT, "engine must not be NULL");
  return guarded(AFD_ERR_INVALID_ARGUMENT, [&] {
    return e->driver->cancel(request_id)
               ? AFD_OK
               : set_error(AFD_ERR_NOT_FOUND, "request " + std::to_string(request_id) + " is not in flight");
  });
}

size_t afd_poll(afd_engine* e, afd_event* events, size_t max_events, int timeout_ms) {
  g_last_error.clear();
  if (!e || !events || max_events == 0) return 0;
  std::unique_lock<std::mutex> l(e->mu);
  auto ready = [&] { return !e->polled.empty(); };
  if (timeout_ms < 0)
    e->cv.wait(l, ready);
  else if (timeout_ms > 0)
    e->cv.wait_for(l, std::chrono::milliseconds(timeout_ms), ready);
  size_t n = 0;
  while (n < max_events && !e->polled.empty()) {
    events[n++] = e->polled.front();
    e->polled.pop_front();
  }
  return n;
}

afd_status afd_get_stats(afd_engine* e, afd_stats* out) {
  if (!e || !out) return set_error(AFD_ERR_INVALID_ARGUMENT, "engine and out must not be NULL");
  return guarded(AFD_ERR_INTERNAL, [&] {
    const afd::server::DriverStats s = e->driver->stats();
    const afd::ModelConfig& c = e->driver->config();
    *out = afd_stats{s.in_flight, s.running, s.kv_blocks_used, s.kv_blocks_total, s.steps, s.tokens,
                     s.step_s_total, s.overlap_total, c.vocab_size, c.max_position_embeddings,
                     c.eos_token_ids.empty() ? -1 : c.eos_token_ids[0]};
    return AFD_OK;
  });
}

afd_status afd_detokenize(afd_engine* e, const int32_t* ids, size_t n_ids, char* buf, size_t cap, size_t* needed) {
  if (!e || (!ids && n_ids) || (!buf && cap)) return set_error(AFD_ERR_INVALID_ARGUMENT, "NULL argument");
  if (!e->tokenizer) return set_error(AFD_ERR_UNSUPPORTED, "the model has no tokenizer.json");
  return guarded(AFD_ERR_INVALID_ARGUMENT, [&] {
    const std::string text = e->tokenizer->decode(std::span<const int32_t>(ids, n_ids), /*skip_special=*/true);
    if (needed) *needed = text.size();
    if (cap) {
      const size_t n = std::min(cap - 1, text.size());
      text.copy(buf, n);
      buf[n] = '\0';
    }
    return AFD_OK;
  });
}

const char* afd_last_error(void) { return g_last_error.c_str(); }

}  // extern "C"
