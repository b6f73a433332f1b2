// The FFN side in another process: forwards every FfnBackend call to an afd-ffn-server over one TCP connection
// (tcp_protocol.h). Calls are blocking and come from one thread at a time (the pipeline's FFN driver thread).
//
// Failure model: a peer that closes, resets, or stays silent for kDeadPeer during a call (the server sends
// heartbeats while it computes) fails that call with afd::Error "FFN server host:port went away ..." and drops the
// connection; the next call connects again (and re-checks the model fingerprint). Nothing on this side is lost.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "iface/ffn_backend.h"
#include "transport/ffn_batcher.h"
#include "transport/tcp_protocol.h"

namespace afd::transport {

struct RemoteFfnOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds call_timeout{120000};  // a whole call, however many heartbeats arrive
};

// "host:port" -> (host, port); throws afd::Error naming `what` (e.g. "--ffn-remote") when malformed.
std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& what);

class RemoteFfn : public FfnBackend {
 public:
  // `cfg` is the model this process runs (its attention side); the server must serve the same one. Connects now.
  RemoteFfn(const std::string& host_port, const ModelConfig& cfg, RemoteFfnOptions opt = {});
  ~RemoteFfn() override;

  std::string name() const override { return "remote FFN at " + peer_; }
  const ModelConfig& config() const override { return cfg_; }
  void ffn_half(int layer, uint16_t* x, int n) override;
  void logits(const uint16_t* x, int n, float* out) override;
  void sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step,
              int32_t* out_ids) override;

  // One PING round trip; returns its seconds (liveness checks, overhead measurements).
  double ping();
  // The server's batching counters (all its connections together), by a STATS round trip.
  BatchStats server_stats();
  bool connected() const;
  int reconnects() const { return connects_ - 1; }

 private:
  struct Io;
  void ensure_connected();
  void connect();
  void drop();
  // Sends out_ (header room + payload) as `type` and reads the reply's payload into in_; returns its size.
  size_t call(MsgType type, size_t expect_bytes);
  void transfer(bool write, uint8_t* p, size_t n, std::chrono::steady_clock::time_point call_end, const char* what);
  [[noreturn]] void went_away(const char* what, const std::string& why);

  std::string peer_, label_, host_;  // "host:port", "FFN server host:port", host
  int port_ = 0;
  ModelConfig cfg_;
  Fingerprint fp_;
  RemoteFfnOptions opt_;
  std::unique_ptr<Io> io_;
  uint64_t next_id_ = 1;
  int connects_ = 0;
  // Reused frame buffers (grow to the largest call, then no allocation): out_ = header room + request payload,
  // in_ = the last reply's payload.
  std::vector<uint8_t> out_, in_;
};

}  // namespace afd::transport
