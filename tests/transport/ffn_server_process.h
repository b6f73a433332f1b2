// Test helpers for the TCP transport: afd-ffn-server as a child process on a loopback port (port 0: a free one), and
// an FfnServer over any backend on a thread of the test.
#pragma once

#include <string>
#include <thread>

#include "../child_process.h"
#include "transport/ffn_server.h"

namespace afd::test {

class FfnServerProcess : public ServerChild {
 public:
  explicit FfnServerProcess(const std::string& model, int port = 0)
      : ServerChild({AFD_FFN_SERVER_BIN, "--model", model, "--port", std::to_string(port), "--ffn-device", "cpu"}) {}
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
};

// An FfnServer on 127.0.0.1 (a free port) serving `ffn` from a thread; stopped and joined at scope exit.
class InProcessServer {
 public:
  explicit InProcessServer(FfnBackend& ffn, transport::BatchOptions batch = {})
      : server_(ffn, "127.0.0.1", 0, batch), th_([this] { server_.run(false); }) {}
  ~InProcessServer() {
    server_.stop();
    th_.join();
  }
  int port() const { return server_.port(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  transport::BatchStats stats() const { return server_.stats(); }

 private:
  transport::FfnServer server_;
  std::thread th_;
};

}  // namespace afd::test
