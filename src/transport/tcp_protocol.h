// The wire protocol between the attention side (RemoteFfn) and the FFN side (afd-ffn-server), version 1.
//
// Every message is a frame: a 32-byte little-endian header, then `payload_bytes` bytes.
//   offset 0  u32 magic 'AFDF'        offset 4  u16 version        offset 6  u16 type
//   offset 8  u64 request id          offset 16 u64 payload bytes  offset 24 u32 CRC-32 of the payload
//   offset 28 u32 CRC-32 of bytes 0..27 (so a corrupt length is caught before anything is allocated for it)
// A reply carries the request's id and type | kReply. Payloads (all little-endian, bf16 as u16):
//   HELLO         fingerprint (see Fingerprint::encode)                 -> HELLO | kReply with the server's
//   FFN_HALF      i32 layer, i32 n, bf16 x[n, hidden]                   -> bf16 x[n, hidden]
//   LOGITS        i32 n, bf16 x[n, hidden]                              -> f32 logits[n, vocab]
//   SAMPLE        i32 n, bf16 x[n, hidden], n x {f32 temperature, i32 top_k, f32 top_p, u64 seed}, u64 step[n]
//                                                                       -> i32 ids[n]
//   PING          empty                                                 -> PING | kReply (pong)
//   STATS         empty                                                 -> i64 {requests, backend calls, rows,
//                                                                          calls serving several requests}
//   HEARTBEAT     empty; the server sends one every kHeartbeat while it computes a request (liveness)
//   ERROR         UTF-8 sentence; the server's answer to a request it could not serve (bad frame: then it closes)
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "model/config.h"

namespace afd::transport {

constexpr uint32_t kMagic = 0x46444641;  // "AFDF" read as little-endian bytes
constexpr uint16_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;
constexpr uint64_t kMaxPayload = uint64_t{1} << 30;  // larger frames are refused before any allocation
// A peer silent for kDeadPeer during a call is dead; the server's heartbeats keep a long computation alive.
constexpr auto kHeartbeat = std::chrono::milliseconds(150);
constexpr auto kDeadPeer = std::chrono::milliseconds(750);

enum class MsgType : uint16_t { kHello = 1, kFfnHalf = 2, kLogits = 3, kSample = 4, kPing = 5, kHeartbeat = 6,
                                kError = 7, kStats = 8 };
constexpr uint16_t kReply = 0x80;
const char* type_name(uint16_t type);

struct FrameHeader {
  uint32_t magic = kMagic;
  uint16_t version = kVersion;
  uint16_t type = 0;
  uint64_t request_id = 0;
  uint64_t payload_bytes = 0;
  uint32_t payload_crc = 0;
};

uint32_t crc32(const void* data, size_t n);
// Writes the 32 header bytes (header CRC included) into out.
void encode_header(const FrameHeader& h, uint8_t* out);
// Parses and validates the header bytes (magic, version, header CRC, payload limit); throws afd::Error naming
// the field that is wrong, prefixed with `peer`.
FrameHeader decode_header(const uint8_t* in, const std::string& peer);

// What both sides must agree on to share a model: shapes and a hash of every config value the FFN side uses.
struct Fingerprint {
  std::string model_type;
  int32_t hidden = 0, layers = 0, vocab = 0, experts = 0;
  uint64_t config_hash = 0;

  static Fingerprint of(const ModelConfig& c);
  std::string describe() const;
  bool operator==(const Fingerprint&) const = default;
  void encode(std::vector<uint8_t>& out) const;
  static Fingerprint decode(const uint8_t* p, size_t n, const std::string& peer);
};

// Little-endian appends and a bounds-checked reader (a short payload is an afd::Error naming the message).
class PayloadWriter {
 public:
  // Keeps the first `keep` bytes of buf (room for the frame header) and appends after them.
  explicit PayloadWriter(std::vector<uint8_t>& buf, size_t keep = 0) : buf_(buf) { buf_.resize(keep); }
  template <typename T>
  void put(const T& v) { bytes(&v, sizeof v); }
  void bytes(const void* p, size_t n) {
    const size_t at = buf_.size();
    buf_.resize(at + n);
    if (n) std::memcpy(buf_.data() + at, p, n);
  }

 private:
  std::vector<uint8_t>& buf_;
};

class PayloadReader {
 public:
  PayloadReader(const uint8_t* p, size_t n, std::string what) : p_(p), n_(n), what_(std::move(what)) {}
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  }
  const uint8_t* take(size_t n);
  size_t left() const { return n_ - at_; }

 private:
  const uint8_t* p_;
  size_t n_, at_ = 0;
  std::string what_;
};

}  // namespace afd::transport
