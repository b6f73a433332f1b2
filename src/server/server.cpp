#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include "server/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/handlers.h"
#include "util/error.h"

namespace afd::server {

namespace net = boost::asio;
using net::ip::tcp;

Server::Server(std::unique_ptr<EngineDriver> driver, ModelInfo model, ServerOptions opt)
    : driver_(std::move(driver)), model_(std::move(model)), opt_(std::move(opt)), acceptor_(io_), signals_(io_) {
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(opt_.host, ec);
  AFD_REQUIRE(!ec, "--host ", opt_.host, " is not an IP address");
  AFD_REQUIRE(opt_.port >= 0 && opt_.port < 65536, "--port ", opt_.port, " is not a TCP port");
  const tcp::endpoint ep(addr, static_cast<unsigned short>(opt_.port));
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep, ec);
  AFD_REQUIRE(!ec, "cannot listen on ", opt_.host, ":", opt_.port, ": ", ec.message());
  acceptor_.listen(net::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
}

Server::~Server() { driver_->stop(); }

void Server::add_connection(Connection* c) {
  conns_.insert(c);
  counters_.open_connections = static_cast<int64_t>(conns_.size());
}
void Server::remove_connection(Connection* c) {
  conns_.erase(c);
  counters_.open_connections = static_cast<int64_t>(conns_.size());
}

void Server::start_drain() {
  if (draining_.exchange(true)) return;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  signals_.cancel(ignored);
  // Idle keep-alive connections are waiting for a request that must not come: cancel their reads. Busy ones close
  // after their answer (the session loop checks draining()).
  for (Connection* c : conns_)
    if (!c->busy) c->stream.socket().cancel(ignored);
}

void Server::drain() {
  net::post(io_, [this] { start_drain(); });
}

void Server::run(bool handle_signals) {
  co_spawn(
      io_,
      [this]() -> net::awaitable<void> {
        for (;;) {
          boost::system::error_code ec;
          tcp::socket s = co_await acceptor_.async_accept(net::redirect_error(net::use_awaitable, ec));
          if (!acceptor_.is_open()) co_return;
          if (ec) continue;  // e.g. the client gave up before the accept; keep serving
          co_spawn(io_, run_session(*this, std::move(s)), net::detached);
        }
      },
      net::detached);
  if (handle_signals) {
    signals_.add(SIGTERM);
    signals_.add(SIGINT);
    signals_.async_wait([this](boost::system::error_code ec, int) {
      if (!ec) start_drain();
    });
  }
  // run() returns when the acceptor is closed and every session has ended; requests of clients that left may still
  // run in the engine: the driver finishes them before it stops.
  io_.run();
  driver_->stop();
}

}  // namespace afd::server
