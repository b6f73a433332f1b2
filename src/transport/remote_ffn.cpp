#include <utility>  // first: Boost 1.74's asio headers use std::exchange without including it

#include "transport/remote_ffn.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>

#include "util/error.h"

namespace afd::transport {

namespace net = boost::asio;
using net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct RemoteFfn::Io {
  net::io_context ctx;
  tcp::socket sock{ctx};
};

std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& what) {
  const size_t colon = s.rfind(':');
  AFD_REQUIRE(colon != std::string::npos && colon > 0 && colon + 1 < s.size(), what, " '", s,
              "' is not host:port");
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  AFD_REQUIRE(port > 0 && port < 65536, what, " '", s, "' has no valid TCP port");
  return {s.substr(0, colon), port};
}

RemoteFfn::RemoteFfn(const std::string& host_port, const ModelConfig& cfg, RemoteFfnOptions opt)
    : peer_(host_port),
      label_("FFN server " + host_port),
      cfg_(cfg),
      fp_(Fingerprint::of(cfg)),
      opt_(opt),
      io_(std::make_unique<Io>()) {
  std::tie(host_, port_) = parse_host_port(host_port, "the FFN server address");
  connect();
}

RemoteFfn::~RemoteFfn() = default;

bool RemoteFfn::connected() const { return io_->sock.is_open(); }

void RemoteFfn::went_away(const char* what, const std::string& why) {
  drop();
  fail("FFN server ", peer_, " went away during ", what, " (", why, "); this call failed and the next one reconnects");
}

void RemoteFfn::drop() {
  boost::system::error_code ec;
  io_->sock.close(ec);
}

// Moves n bytes; the peer must make progress at least every kDeadPeer and finish before call_end.
void RemoteFfn::transfer(bool write, uint8_t* p, size_t n, Clock::time_point call_end, const char* what) {
  size_t done = 0;
  while (done < n) {
    bool finished = false;
    boost::system::error_code ec;
    size_t moved = 0;
    auto on_done = [&](const boost::system::error_code& e, size_t k) {
      ec = e;
      moved = k;
      finished = true;
    };
    if (write)
      io_->sock.async_write_some(net::buffer(p + done, n - done), on_done);
    else
      io_->sock.async_read_some(net::buffer(p + done, n - done), on_done);
    io_->ctx.restart();
    io_->ctx.run_until(std::min(Clock::now() + kDeadPeer, call_end));
    if (!finished) {
      drop();  // aborts the operation; its handler runs below, so nothing refers to this frame afterwards
      io_->ctx.restart();
      io_->ctx.run();
      went_away(what, Clock::now() >= call_end ? "the call timed out"
                                               : "no byte for " + std::to_string(kDeadPeer.count()) + " ms");
    }
    if (ec) went_away(what, ec == net::error::eof ? "connection closed" : ec.message());
    done += moved;
  }
}

void RemoteFfn::connect() {
  drop();
  tcp::resolver resolver(io_->ctx);
  boost::system::error_code ec;
  const auto eps = resolver.resolve(host_, std::to_string(port_), ec);
  AFD_REQUIRE(!ec, "cannot resolve the FFN server host ", host_, ": ", ec.message());
  bool finished = false;
  net::async_connect(io_->sock, eps, [&](const boost::system::error_code& e, const tcp::endpoint&) {
    ec = e;
    finished = true;
  });
  io_->ctx.restart();
  io_->ctx.run_for(opt_.connect_timeout);
  if (!finished) {
    drop();
    io_->ctx.restart();
    io_->ctx.run();
    fail("cannot connect to the FFN server ", peer_, ": no answer within ", opt_.connect_timeout.count(), " ms");
  }
  if (ec) {
    drop();
    fail("cannot connect to the FFN server ", peer_, ": ", ec.message());
  }
  io_->sock.set_option(tcp::no_delay(true));
  ++connects_;
  // HELLO: the server refuses (ERROR, then close) a different model; this side checks the server's answer too.
  out_.resize(kHeaderBytes);
  std::vector<uint8_t> fp;
  fp_.encode(fp);
  out_.insert(out_.end(), fp.begin(), fp.end());
  const size_t got = call(MsgType::kHello, 0);
  const Fingerprint theirs = Fingerprint::decode(in_.data(), got, label_);
  if (!(theirs == fp_)) {
    drop();
    fail("FFN server ", peer_, " serves ", theirs.describe(), " but this process runs ", fp_.describe());
  }
}

void RemoteFfn::ensure_connected() {
  if (io_->sock.is_open()) {
    // A peer that closed while we were idle shows as a readable EOF (or an error): reconnect before sending, since
    // no request of ours was in flight. Any other unread byte means the stream is out of step: reconnect too.
    uint8_t b;
    const ssize_t r = ::recv(io_->sock.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    drop();
  }
  connect();
}

size_t RemoteFfn::call(MsgType type, size_t expect_bytes) {
  const char* what = type_name(static_cast<uint16_t>(type));
  const auto end = Clock::now() + opt_.call_timeout;
  FrameHeader h;
  h.type = static_cast<uint16_t>(type);
  h.request_id = next_id_++;
  h.payload_bytes = out_.size() - kHeaderBytes;
  h.payload_crc = crc32(out_.data() + kHeaderBytes, h.payload_bytes);
  encode_header(h, out_.data());
  transfer(true, out_.data(), out_.size(), end, what);
  uint8_t hb[kHeaderBytes];
  for (;;) {
    transfer(false, hb, kHeaderBytes, end, what);
    FrameHeader r;
    try {
      r = decode_header(hb, label_);
    } catch (const Error&) {
      drop();
      throw;
    }
    if (in_.size() < r.payload_bytes) in_.resize(r.payload_bytes);
    transfer(false, in_.data(), r.payload_bytes, end, what);
    if (crc32(in_.data(), r.payload_bytes) != r.payload_crc) {
      drop();
      fail("FFN server ", peer_, ": the ", type_name(r.type),
           " reply's payload checksum does not match (corrupt data)");
    }
    if (r.type == static_cast<uint16_t>(MsgType::kHeartbeat)) continue;
    if (r.type == static_cast<uint16_t>(MsgType::kError)) {
      const std::string msg(reinterpret_cast<const char*>(in_.data()), r.payload_bytes);
      if (type == MsgType::kHello) drop();  // the server closes after refusing a HELLO
      fail("FFN server ", peer_, " refused ", what, ": ", msg);
    }
    if (r.request_id != h.request_id || r.type != (h.type | kReply)) {
      drop();
      fail("FFN server ", peer_, " answered ", what, " #", h.request_id, " with ", type_name(r.type), " #",
           r.request_id, " (stream out of step)");
    }
    if (type != MsgType::kHello && r.payload_bytes != expect_bytes) {
      drop();
      fail("FFN server ", peer_, ": the ", what, " reply has ", r.payload_bytes, " bytes, expected ", expect_bytes);
    }
    return r.payload_bytes;
  }
}

void RemoteFfn::ffn_half(int layer, uint16_t* x, int n) {
  if (n <= 0) return;
  ensure_connected();
  const size_t bytes = static_cast<size_t>(n) * cfg_.hidden_size * sizeof(uint16_t);
  PayloadWriter w(out_, kHeaderBytes);
  w.put(static_cast<int32_t>(layer));
  w.put(static_cast<int32_t>(n));
  w.bytes(x, bytes);
  call(MsgType::kFfnHalf, bytes);
  std::memcpy(x, in_.data(), bytes);
}

void RemoteFfn::logits(const uint16_t* x, int n, float* out) {
  if (n <= 0) return;
  ensure_connected();
  PayloadWriter w(out_, kHeaderBytes);
  w.put(static_cast<int32_t>(n));
  w.bytes(x, static_cast<size_t>(n) * cfg_.hidden_size * sizeof(uint16_t));
  const size_t bytes = static_cast<size_t>(n) * cfg_.vocab_size * sizeof(float);
  call(MsgType::kLogits, bytes);
  std::memcpy(out, in_.data(), bytes);
}

void RemoteFfn::sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step,
                       int32_t* out_ids) {
  if (n <= 0) return;
  ensure_connected();
  PayloadWriter w(out_, kHeaderBytes);
  w.put(static_cast<int32_t>(n));
  w.bytes(x, static_cast<size_t>(n) * cfg_.hidden_size * sizeof(uint16_t));
  for (int i = 0; i < n; ++i) {
    w.put(params[i].temperature);
    w.put(static_cast<int32_t>(params[i].top_k));
    w.put(params[i].top_p);
    w.put(params[i].seed);
  }
  w.bytes(step, static_cast<size_t>(n) * sizeof(uint64_t));
  call(MsgType::kSample, static_cast<size_t>(n) * sizeof(int32_t));
  std::memcpy(out_ids, in_.data(), static_cast<size_t>(n) * sizeof(int32_t));
}

double RemoteFfn::ping() {
  ensure_connected();
  const auto b = Clock::now();
  out_.resize(kHeaderBytes);
  call(MsgType::kPing, 0);
  return std::chrono::duration<double>(Clock::now() - b).count();
}

BatchStats RemoteFfn::server_stats() {
  ensure_connected();
  out_.resize(kHeaderBytes);
  call(MsgType::kStats, 4 * sizeof(int64_t));
  int64_t v[4];
  std::memcpy(v, in_.data(), sizeof v);
  return {v[0], v[1], v[2], v[3]};
}

}  // namespace afd::transport
