// One connection: read a request (bounded in size and time), check the API key, route it, answer; repeat while the
// client keeps the connection alive and the server is not draining.
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/handlers.h"
#include "server/server.h"

namespace afd::server {

namespace {

using nlohmann::json;

bool authorized(const Server& srv, const Request& req) {
  const std::string& key = srv.options().api_key;
  if (key.empty()) return true;
  auto it = req.find(http::field::authorization);
  return it != req.end() && it->value() == "Bearer " + key;
}

// Answers everything but the completions; returns whether the connection may be kept alive.
net::awaitable<bool> serve_simple(Server& srv, Connection& c, const Request& req, const std::string& path) {
  const bool keep = req.keep_alive();
  if (req.method() != http::verb::get) {
    const ApiError e(405, "use GET for " + path, "invalid_request_error");
    srv.counters().count(e.status);
    co_return co_await write_error(c, e, keep) && keep;
  }
  std::string body;
  const char* type = "application/json";
  if (path == "/health") {
    body = json{{"status", srv.draining() ? "draining" : "ok"}}.dump();
  } else if (path == "/v1/models") {
    body = json{{"object", "list"},
                {"data", json::array({{{"id", srv.model().name},
                                       {"object", "model"},
                                       {"created", 0},
                                       {"owned_by", "afd"},
                                       {"max_model_len", srv.model().max_context}}})}}
               .dump();
  } else {
    body = render_metrics(srv.counters(), srv.driver().stats());
    type = "text/plain; version=0.0.4";
  }
  srv.counters().count(200);
  co_return co_await write_response(c, http::status::ok, std::move(body), type, keep) && keep;
}

net::awaitable<bool> route(Server& srv, Connection& c, const Request& req) {
  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  const bool keep = req.keep_alive();
  if (path != "/health" && !authorized(srv, req)) {
    const ApiError e(401, "a valid API key is required: send 'Authorization: Bearer <key>'", "invalid_request_error",
                     "", "invalid_api_key");
    srv.counters().count(e.status);
    co_return co_await write_error(c, e, keep) && keep;
  }
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (req.method() != http::verb::post) {
      const ApiError e(405, "use POST for " + path);
      srv.counters().count(e.status);
      co_return co_await write_error(c, e, keep) && keep;
    }
    co_return co_await serve_completion(srv, c, req, path == "/v1/chat/completions");
  }
  if (path == "/health" || path == "/v1/models" || path == "/metrics") co_return co_await serve_simple(srv, c, req, path);
  const ApiError e(404, "no route for " + path, "invalid_request_error", "", "not_found");
  srv.counters().count(e.status);
  co_return co_await write_error(c, e, keep) && keep;
}

}  // namespace

net::awaitable<void> run_session(Server& srv, net::ip::tcp::socket socket) {
  Connection c(std::move(socket));
  srv.add_connection(&c);
  beast::flat_buffer buf;
  for (bool first = true; !srv.draining(); first = false) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.header_limit(64 * 1024);
    // The read timer cancels (does not close) the socket, so a slow client can still be told 408.
    const int gen = ++c.read_gen;
    c.timed_out = false;
    c.read_timer.expires_after(srv.options().read_timeout);
    c.read_timer.async_wait([&c, gen](boost::system::error_code e) {
      // Cancelled means the request arrived in time; `c` is alive whenever e is success (its timer would have
      // aborted the wait), and a stale expiry of an earlier read is ignored by its generation.
      if (e || gen != c.read_gen || !c.reading) return;
      c.timed_out = true;
      boost::system::error_code ignored;
      c.stream.socket().cancel(ignored);
    });
    boost::system::error_code ec;
    c.busy = false;
    c.reading = true;
    co_await http::async_read_header(c.stream, buf, parser, net::redirect_error(net::use_awaitable, ec));
    if (!ec && !parser.is_done()) {
      // curl and others send "Expect: 100-continue" with larger bodies and wait for the go-ahead before sending.
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go{http::status::continue_, 11};
        co_await http::async_write(c.stream, go, net::redirect_error(net::use_awaitable, ec));
      }
      if (!ec) co_await http::async_read(c.stream, buf, parser, net::redirect_error(net::use_awaitable, ec));
    }
    c.reading = false;
    c.busy = true;
    const bool timed_out = c.timed_out;
    c.read_timer.cancel();
    if (ec) {
      // A keep-alive connection that stays silent is closed quietly; anything else gets an error response.
      if (ec == http::error::end_of_stream || (!timed_out && ec == net::error::operation_aborted)) break;
      if (timed_out && !first && !parser.got_some()) break;
      const ApiError e = timed_out                      ? ApiError(408, "the request did not arrive in time")
                         : ec == http::error::body_limit ? ApiError(413, "the request body exceeds 1 MiB")
                                                         : ApiError(400, "malformed HTTP request: " + ec.message());
      srv.counters().count(e.status);
      co_await write_error(c, e, false);
      break;
    }
    if (!co_await route(srv, c, parser.get())) break;
  }
  boost::system::error_code ignored;
  c.stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  c.stream.socket().close(ignored);
  srv.remove_connection(&c);
}

}  // namespace afd::server
