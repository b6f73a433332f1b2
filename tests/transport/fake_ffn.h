// A fake FFN backend whose outputs are known functions of its inputs, and raw frame builders, for the transport tests.
#pragma once

#include <chrono>
#include <thread>
#include <vector>

#include "iface/ffn_backend.h"
#include "transport/tcp_protocol.h"

namespace afd::test {

inline ModelConfig fake_config(int hidden = 8) {
  ModelConfig c;
  c.model_type = "fake_moe";
  c.hidden_size = hidden;
  c.num_layers = 3;
  c.vocab_size = 20;
  c.n_routed_experts = 4;
  return c;
}

// A backend whose every output is a known function of its inputs, so a misrouted, reordered or corrupted row shows.
class FakeFfn : public FfnBackend {
 public:
  explicit FakeFfn(ModelConfig c, int delay_ms = 0) : c_(std::move(c)), delay_ms_(delay_ms) {}
  std::string name() const override { return "fake"; }
  const ModelConfig& config() const override { return c_; }
  void ffn_half(int layer, uint16_t* x, int n) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    for (int i = 0; i < n * c_.hidden_size; ++i) x[i] = static_cast<uint16_t>(x[i] * 3 + layer + 1);
  }
  void logits(const uint16_t* x, int n, float* out) override {
    for (int r = 0; r < n; ++r)
      for (int v = 0; v < c_.vocab_size; ++v)
        out[r * c_.vocab_size + v] = x[r * c_.hidden_size + v % c_.hidden_size] + 0.5f * v;
  }
  void sample(const uint16_t* x, int n, const SamplingParams* p, const uint64_t* step, int32_t* ids) override {
    for (int r = 0; r < n; ++r)
      ids[r] = static_cast<int32_t>((x[r * c_.hidden_size] + p[r].top_k + p[r].seed + step[r]) % c_.vocab_size);
  }

 private:
  ModelConfig c_;
  int delay_ms_;
};

// Rows tagged with their row, column and a seed: never zeros, every value distinct within a call.
inline std::vector<uint16_t> tagged_rows(int n, int hidden, int seed) {
  std::vector<uint16_t> x(static_cast<size_t>(n) * hidden);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < hidden; ++c) x[r * hidden + c] = static_cast<uint16_t>(1 + r * 256 + c * 3 + seed * 7);
  return x;
}

inline std::vector<uint8_t> frame(uint16_t type, const std::vector<uint8_t>& payload, uint32_t magic = transport::kMagic,
                           uint16_t version = transport::kVersion, uint64_t id = 42) {
  transport::FrameHeader h;
  h.magic = magic;
  h.version = version;
  h.type = type;
  h.request_id = id;
  h.payload_bytes = payload.size();
  h.payload_crc = transport::crc32(payload.data(), payload.size());
  std::vector<uint8_t> out(transport::kHeaderBytes);
  transport::encode_header(h, out.data());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

inline std::vector<uint8_t> hello_payload(const ModelConfig& c) {
  std::vector<uint8_t> p;
  transport::Fingerprint::of(c).encode(p);
  return p;
}

}  // namespace afd::test
