#include "transport/tcp_protocol.h"

#include <bit>
#include <sstream>

#include "util/error.h"

namespace afd::transport {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian; add byte swaps");

const char* type_name(uint16_t type) {
  switch (static_cast<MsgType>(type & ~kReply)) {
    case MsgType::kHello: return "HELLO";
    case MsgType::kFfnHalf: return "FFN_HALF";
    case MsgType::kLogits: return "LOGITS";
    case MsgType::kSample: return "SAMPLE";
    case MsgType::kPing: return "PING";
    case MsgType::kHeartbeat: return "HEARTBEAT";
    case MsgType::kError: return "ERROR";
    case MsgType::kStats: return "STATS";
  }
  return "unknown";
}

namespace {
// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) by slicing-by-8: table[k][b] is the CRC of byte b followed
// by k zero bytes, so eight input bytes fold in with eight lookups. Checked against boost::crc_32_type in the tests.
struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
      t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
      for (int i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
};
const Crc32Tables kCrc;
}  // namespace

uint32_t crc32(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  const auto& t = kCrc.t;
  uint32_t c = ~0u;
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
        t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
  }
  for (; n; --n) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return ~c;
}

void encode_header(const FrameHeader& h, uint8_t* out) {
  std::memcpy(out + 0, &h.magic, 4);
  std::memcpy(out + 4, &h.version, 2);
  std::memcpy(out + 6, &h.type, 2);
  std::memcpy(out + 8, &h.request_id, 8);
  std::memcpy(out + 16, &h.payload_bytes, 8);
  std::memcpy(out + 24, &h.payload_crc, 4);
  const uint32_t hc = crc32(out, 28);
  std::memcpy(out + 28, &hc, 4);
}

FrameHeader decode_header(const uint8_t* in, const std::string& peer) {
  FrameHeader h;
  std::memcpy(&h.magic, in + 0, 4);
  std::memcpy(&h.version, in + 4, 2);
  std::memcpy(&h.type, in + 6, 2);
  std::memcpy(&h.request_id, in + 8, 8);
  std::memcpy(&h.payload_bytes, in + 16, 8);
  std::memcpy(&h.payload_crc, in + 24, 4);
  uint32_t hc;
  std::memcpy(&hc, in + 28, 4);
  AFD_REQUIRE(h.magic == kMagic, peer, ": frame magic is 0x", std::hex, h.magic, ", not 0x", kMagic,
              " (not an afd FFN peer?)");
  AFD_REQUIRE(h.version == kVersion, peer, ": frame version is ", h.version, " but this build speaks version ",
              kVersion);
  AFD_REQUIRE(hc == crc32(in, 28), peer, ": frame header checksum does not match (corrupt header)");
  AFD_REQUIRE(h.payload_bytes <= kMaxPayload, peer, ": frame payload of ", h.payload_bytes,
              " bytes exceeds the limit of ", kMaxPayload);
  return h;
}

Fingerprint Fingerprint::of(const ModelConfig& c) {
  Fingerprint f;
  f.model_type = c.model_type;
  f.hidden = c.hidden_size;
  f.layers = c.num_layers;
  f.vocab = c.vocab_size;
  f.experts = c.n_routed_experts;
  // Every config value the FFN side's arithmetic depends on, in a fixed order (FNV-1a 64 of the text).
  std::ostringstream os;
  os.precision(17);
  os << c.model_type << '|' << c.vocab_size << '|' << c.hidden_size << '|' << c.num_layers << '|'
     << c.rms_norm_eps << '|' << c.mlp_bias << '|' << c.tie_word_embeddings << '|' << c.intermediate_size << '|'
     << c.moe_intermediate_size << '|' << c.n_routed_experts << '|' << c.top_k << '|' << c.n_shared_experts << '|'
     << c.n_group << '|' << c.topk_group << '|' << c.norm_topk_prob << '|' << c.routed_scaling_factor << '|'
     << static_cast<int>(c.router) << '|' << c.first_k_dense_replace << '|' << c.decoder_sparse_step << '|'
     << c.fp8;
  for (int l : c.mlp_only_layers) os << ',' << l;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : os.str()) h = (h ^ ch) * 1099511628211ull;
  f.config_hash = h;
  return f;
}

std::string Fingerprint::describe() const {
  std::ostringstream os;
  os << model_type << " (hidden " << hidden << ", " << layers << " layers, vocab " << vocab << ", " << experts
     << " experts, config hash " << std::hex << config_hash << ")";
  return os.str();
}

void Fingerprint::encode(std::vector<uint8_t>& out) const {
  PayloadWriter w(out);
  w.put(static_cast<uint32_t>(model_type.size()));
  w.bytes(model_type.data(), model_type.size());
  w.put(hidden);
  w.put(layers);
  w.put(vocab);
  w.put(experts);
  w.put(config_hash);
}

Fingerprint Fingerprint::decode(const uint8_t* p, size_t n, const std::string& peer) {
  PayloadReader r(p, n, peer + ": HELLO");
  Fingerprint f;
  const auto len = r.get<uint32_t>();
  const uint8_t* s = r.take(len);
  f.model_type.assign(reinterpret_cast<const char*>(s), len);
  f.hidden = r.get<int32_t>();
  f.layers = r.get<int32_t>();
  f.vocab = r.get<int32_t>();
  f.experts = r.get<int32_t>();
  f.config_hash = r.get<uint64_t>();
  return f;
}

const uint8_t* PayloadReader::take(size_t n) {
  AFD_REQUIRE(n <= n_ - at_, what_, " payload is truncated: needs ", at_ + n, " bytes, has ", n_);
  const uint8_t* p = p_ + at_;
  at_ += n;
  return p;
}

}  // namespace afd::transport
