// One HTTP connection's state and the helpers that write responses on it. Everything here runs on the server's
// single I/O thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <string>

namespace afd::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Request = http::request<http::string_body>;

class ApiError;

// A client that takes nothing for this long while a response (or a stream chunk) is written is dropped.
constexpr std::chrono::seconds kWriteTimeout{30};

struct Connection {
  explicit Connection(net::ip::tcp::socket s) : stream(std::move(s)), read_timer(stream.get_executor()) {}
  beast::tcp_stream stream;
  net::steady_timer read_timer;  // bounds the time a request may take to arrive (cancels the read, see session)
  bool busy = false;             // a request is being answered; an idle connection is closed at drain
  bool reading = false;          // a request read is pending
  bool timed_out = false;        // the pending read was cancelled by read_timer
  int read_gen = 0;              // counts reads; tells a stale timer expiry from the current one
};

// True when the peer has closed the connection or reset it (checked without blocking and without consuming data).
bool peer_gone(Connection& c);

// Writes a complete response; false when the write failed (the connection is then unusable).
net::awaitable<bool> write_response(Connection& c, http::status status, std::string body, const char* content_type,
                                    bool keep_alive);
net::awaitable<bool> write_error(Connection& c, const ApiError& e, bool keep_alive);

}  // namespace afd::server
