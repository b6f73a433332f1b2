// The FFN side served over TCP (tcp_protocol.h): one thread per attention process's connection, all sharing one
// FfnBackend through an FfnBatcher (ffn_batcher.h): one backend call at a time, and requests of several connections
// for the same work pending together run as one call over their concatenated rows.
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
#include "transport/ffn_batcher.h"
#include "transport/tcp_protocol.h"

namespace afd::transport {

class FfnServer {
 public:
  // Listens on host:port now (port 0: any free port; see port()). Throws afd::Error naming host:port.
  FfnServer(FfnBackend& ffn, const std::string& host, int port, BatchOptions batch = {});
  ~FfnServer();

  int port() const { return port_; }
  // Serves until stop() (or SIGTERM/SIGINT when handle_signals), then closes every connection and returns.
  void run(bool handle_signals);
  void stop();  // thread-safe
  int connections_served() const { return served_.load(); }
  BatchStats stats() const { return batcher_.stats(); }  // thread-safe

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
  FfnBatcher batcher_;     // every backend call goes through it
  std::mutex conns_mu_;    // guards conns_
  std::list<std::shared_ptr<Conn>> conns_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> served_{0};
  std::thread heartbeat_;
};

}  // namespace afd::transport
