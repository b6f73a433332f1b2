// Answering a completion request. The engine driver's thread pushes events into the request's channel and wakes
// the handler through the I/O thread; the handler turns tokens into text (TextStream) and writes it out.
//
// Invariants: every token counted in usage.completion_tokens was generated before the stop string (if any) ended
// the text; a request whose client is gone, or which hit a stop string, is cancelled at once (its KV blocks are
// freed at the engine's next step); the SSE header is written only once the engine has accepted the request, so a
// rejection is still answered with an error status.
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>

#include "server/api_error.h"
#include "server/api_response.h"
#include "server/handlers.h"
#include "server/server.h"
#include "tokenizer/text_stream.h"

namespace afd::server {

namespace {

using engine::FinishReason;

// Events of one request, filled by the driver thread, drained by the handler.
struct Channel {
  explicit Channel(net::io_context& io) : wake(io) {}
  std::mutex mu;
  std::deque<TokenEvent> events;
  net::steady_timer wake;  // touched only on the I/O thread
};

constexpr auto kPeerCheck = std::chrono::milliseconds(50);  // how often a waiting handler checks its client

const char* reason_name(FinishReason f, bool stopped) {
  return stopped || f == FinishReason::kEos || f == FinishReason::kCancelled ? "stop" : "length";
}

// Writes one HTTP chunk; false when the client cannot take it.
net::awaitable<bool> write_chunk(Connection& c, const std::string& data) {
  boost::system::error_code ec;
  c.stream.expires_after(kWriteTimeout);
  co_await net::async_write(c.stream, http::make_chunk(net::buffer(data)), net::redirect_error(net::use_awaitable, ec));
  c.stream.expires_never();
  co_return !ec;
}

}  // namespace

net::awaitable<bool> serve_completion(Server& srv, Connection& c, const Request& req, bool chat) {
  const bool keep = req.keep_alive();
  CompletionJob job;
  std::optional<ApiError> failed;  // answered after the catch (co_await is not allowed in a handler)
  try {
    job = parse_completion_request(req.body(), chat, srv.model());
  } catch (const ApiError& e) {
    failed = e;
  }
  if (failed) {
    srv.counters().count(failed->status);
    co_return co_await write_error(c, *failed, keep) && keep;
  }
  const ResponseHead head{chat, (chat ? "chatcmpl-" : "cmpl-") + std::to_string(srv.next_completion_id()),
                          std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count(),
                          srv.model().name};
  const Usage prompt_usage{static_cast<int64_t>(job.gen.prompt.size()), 0};
  auto ch = std::make_shared<Channel>(srv.io());
  int64_t id = 0;
  try {
    id = srv.driver().submit(std::move(job.gen), [ch, &io = srv.io()](const TokenEvent& ev) {
      {
        std::lock_guard<std::mutex> l(ch->mu);
        ch->events.push_back(ev);
      }
      net::post(io, [ch] { ch->wake.cancel(); });
    });
  } catch (const Error& e) {
    failed = srv.draining() ? ApiError(503, e.what(), "server_error") : ApiError(400, e.what());
  }
  if (failed) {
    srv.counters().count(failed->status);
    co_return co_await write_error(c, *failed, keep) && keep;
  }
  srv.counters().prompt_tokens += prompt_usage.prompt_tokens;

  tok::TextStream text(*srv.model().tokenizer, job.stop);
  std::string all;               // non-streamed: the whole text
  std::vector<int32_t> all_ids, piece_ids;  // return_token_ids: the ids of `all` and of the current piece
  Usage usage = prompt_usage;
  FinishReason fin = FinishReason::kNone;
  std::string error;
  bool header_sent = false, ok = true;
  while (fin == FinishReason::kNone) {
    std::deque<TokenEvent> evs;
    {
      std::lock_guard<std::mutex> l(ch->mu);
      evs.swap(ch->events);
    }
    if (evs.empty()) {
      boost::system::error_code ec;
      ch->wake.expires_after(kPeerCheck);
      co_await ch->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (peer_gone(c)) {
        ok = false;
        break;
      }
      continue;
    }
    std::string piece;
    piece_ids.clear();
    for (const TokenEvent& ev : evs) {
      if (ev.token >= 0 && !text.stopped()) {
        ++usage.completion_tokens;
        piece_ids.push_back(ev.token);
        piece += text.push(ev.token);
        if (text.stopped()) srv.driver().cancel(id);
      }
      if (ev.finish != FinishReason::kNone) {
        fin = ev.finish;
        error = ev.error;
      }
    }
    if (fin == FinishReason::kRejected || fin == FinishReason::kFailed) break;
    if (fin != FinishReason::kNone) piece += text.finish();
    if (!job.stream) {
      all += piece;
      all_ids.insert(all_ids.end(), piece_ids.begin(), piece_ids.end());
      continue;
    }
    if (!header_sent) {
      http::response<http::empty_body> res{http::status::ok, 11};
      res.set(http::field::server, "afd-serve");
      res.set(http::field::content_type, "text/event-stream");
      res.set(http::field::cache_control, "no-cache");
      res.keep_alive(keep);
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      boost::system::error_code ec;
      c.stream.expires_after(kWriteTimeout);
      co_await http::async_write_header(c.stream, sr, net::redirect_error(net::use_awaitable, ec));
      c.stream.expires_never();
      header_sent = true;
      ok = !ec && (!chat || co_await write_chunk(c, sse_chunk(head, "", nullptr, true)));
    }
    const bool ids_only = job.return_token_ids && !piece_ids.empty();  // tokens whose text is still held back
    if (ok && (!piece.empty() || ids_only))
      ok = co_await write_chunk(c, sse_chunk(head, piece, nullptr, false, job.return_token_ids ? &piece_ids : nullptr));
    if (!ok) break;
  }
  srv.counters().completion_tokens += usage.completion_tokens;
  if (!ok) {  // the client went away: free the sequence now; the channel outlives us in the driver's callback
    srv.driver().cancel(id);
    srv.counters().disconnects += 1;
    srv.counters().count(499);
    co_return false;
  }
  if (fin == FinishReason::kRejected || fin == FinishReason::kFailed) {
    // Rejected: the request can never run (400). Failed: a backend failed while it ran, e.g. the FFN server went
    // away (503: the client may retry).
    const ApiError err = fin == FinishReason::kFailed
                             ? ApiError(503, error.empty() ? "the engine failed" : error, "server_error")
                             : ApiError(400, error.empty() ? "the request was rejected" : error);
    srv.counters().count(err.status);
    co_return co_await write_error(c, err, keep) && keep;
  }
  srv.counters().count(200);
  const char* reason = reason_name(fin, text.stopped());
  if (!job.stream) co_return co_await write_response(c, http::status::ok, completion_body(head, all, reason, usage,
                                                                     job.return_token_ids ? &all_ids : nullptr),
                                                     "application/json", keep) && keep;
  std::string tail = sse_chunk(head, "", reason, false);
  if (job.include_usage) tail += sse_usage(head, usage);
  tail += sse_done();
  ok = co_await write_chunk(c, tail);
  if (ok) {
    boost::system::error_code ec;
    c.stream.expires_after(kWriteTimeout);
    co_await net::async_write(c.stream, http::make_chunk_last(), net::redirect_error(net::use_awaitable, ec));
    c.stream.expires_never();
    ok = !ec;
  }
  co_return ok && keep;
}

}  // namespace afd::server
