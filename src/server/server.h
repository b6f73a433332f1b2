// afd-serve's HTTP server: Boost.Beast on one Asio I/O thread (C++20 coroutines), an EngineDriver thread that owns
// the engine. Handlers submit and cancel; tokens come back through a per-request channel (request_channel.h).
//
// Shutdown (drain): stop accepting, let every request in flight finish and its response be written, then return
// from run().
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "server/api_request.h"
#include "server/engine_driver.h"
#include "server/metrics.h"

namespace afd::server {

struct Connection;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                                       // 0 = any free port (see Server::port())
  std::string api_key;                                   // empty = no authentication
  std::chrono::milliseconds read_timeout{30000};         // a request's header and body must arrive within this;
                                                         // idle keep-alive connections are closed after it
};

class Server {
 public:
  Server(std::unique_ptr<EngineDriver> driver, ModelInfo model, ServerOptions opt);
  ~Server();

  int port() const { return port_; }
  // Serves until drain() (or a SIGTERM/SIGINT when handle_signals) and the drain completes.
  void run(bool handle_signals);
  void drain();  // safe from any thread

  // Used by the connection handlers (http_session.cpp, completion.cpp).
  EngineDriver& driver() { return *driver_; }
  const ModelInfo& model() const { return model_; }
  const ServerOptions& options() const { return opt_; }
  HttpCounters& counters() { return counters_; }
  boost::asio::io_context& io() { return io_; }
  bool draining() const { return draining_.load(); }
  int64_t next_completion_id() { return ++completion_ids_; }
  void add_connection(Connection* c);     // I/O thread only
  void remove_connection(Connection* c);

 private:
  void start_drain();  // on the I/O thread

  std::unique_ptr<EngineDriver> driver_;
  ModelInfo model_;
  ServerOptions opt_;
  boost::asio::io_context io_{1};
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::signal_set signals_;
  std::set<Connection*> conns_;  // open connections (I/O thread only)
  int port_ = 0;
  HttpCounters counters_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> completion_ids_{0};
};

}  // namespace afd::server
