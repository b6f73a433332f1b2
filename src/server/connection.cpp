#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include "server/connection.h"

#include <sys/socket.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>

#include "server/api_error.h"

namespace afd::server {

bool peer_gone(Connection& c) {
  auto& sock = c.stream.socket();
  if (!sock.is_open()) return true;
  char byte;
  const ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;                                     // the client sent more (e.g. a pipelined request)
  if (n == 0) return true;                                     // orderly close
  return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);  // reset or other failure
}

net::awaitable<bool> write_response(Connection& c, http::status status, std::string body, const char* content_type,
                                    bool keep_alive) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::server, "afd-serve");
  res.set(http::field::content_type, content_type);
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  boost::system::error_code ec;
  c.stream.expires_after(kWriteTimeout);
  co_await http::async_write(c.stream, res, net::redirect_error(net::use_awaitable, ec));
  c.stream.expires_never();
  co_return !ec;
}

net::awaitable<bool> write_error(Connection& c, const ApiError& e, bool keep_alive) {
  co_return co_await write_response(c, static_cast<http::status>(e.status), error_body(e), "application/json",
                                    keep_alive);
}

}  // namespace afd::server
