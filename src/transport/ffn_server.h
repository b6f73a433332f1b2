// The FFN side served over TCP (tcp_protocol.h): one thread per attention process's connection, all sharing one
// FfnBackend (one request at a time: the backend is not thread-safe; batching across connections is not done).
//
// A malformed frame (bad magic, version, checksum, oversize or truncated payload) gets an ERROR frame naming the
// field and the connection is closed; a well-formed request the backend rejects gets an ERROR and the connection
// stays. Neither affects other connections.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "iface/ffn_backend.h"
#include "transport/tcp_protocol.h"

namespace afd::transport {

class FfnServer {
 public:
  // Listens on host:port now (port 0: any free port; see port()). Throws afd::Error naming host:port.
  FfnServer(FfnBackend& ffn, const std::string& host, int port);
  ~FfnServer();

  int port() const { return port_; }
  // Serves until stop() (or SIGTERM/SIGINT when handle_signals), then closes every connection and returns.
  void run(bool handle_signals);
  void stop();  // thread-safe
  int connections_served() const { return served_.load(); }

  struct Conn;  // one client connection (ffn_server.cpp)

 private:
  struct Impl;
  void serve(const std::shared_ptr<Conn>& c);
  bool handle(Conn& c, const FrameHeader& h);
  void heartbeat_loop();

  FfnBackend& ffn_;
  Fingerprint fp_;
  std::string where_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
  std::mutex backend_mu_;  // held around every backend call
  std::mutex conns_mu_;    // guards conns_
  std::list<std::shared_ptr<Conn>> conns_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> served_{0};
  std::thread heartbeat_;
};

}  // namespace afd::transport
