#include <utility>  // first: Boost 1.74's asio headers use std::exchange without including it

#include "transport/ffn_server.h"

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <array>
#include <cstdio>
#include <functional>
#include <vector>

#include "util/error.h"

namespace afd::transport {

namespace net = boost::asio;
using net::ip::tcp;

struct FfnServer::Impl {
  net::io_context io;
  tcp::acceptor acceptor{io};
  net::signal_set signals{io};
};

struct FfnServer::Conn {
  explicit Conn(tcp::socket s) : sock(std::move(s)) {
    boost::system::error_code ec;
    const auto ep = sock.remote_endpoint(ec);
    peer = ec ? "a client" : "client " + ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  tcp::socket sock;
  std::string peer;
  std::thread th;
  std::atomic<bool> finished{false};
  std::mutex sock_mu;   // held to close or shut down the socket (the stop path does so from another thread)
  std::mutex write_mu;  // serialises writes: replies from the connection thread, heartbeats from the ticker
  bool busy = false;    // under write_mu: a request is being computed, so only heartbeats write to the socket
  bool hello_done = false;
  int client = 0;                  // the batcher's id for this connection
  std::vector<uint8_t> in;         // the current request's payload (reused)
  std::vector<float> logits;       // LOGITS reply (reused)
  std::vector<int32_t> ids;        // SAMPLE reply (reused)
  std::vector<SamplingParams> params;
  std::vector<uint64_t> steps;
};

namespace {

void write_frame(tcp::socket& sock, uint16_t type, uint64_t id, const void* payload, size_t bytes) {
  FrameHeader h;
  h.type = type;
  h.request_id = id;
  h.payload_bytes = bytes;
  h.payload_crc = crc32(payload, bytes);
  uint8_t hb[kHeaderBytes];
  encode_header(h, hb);
  const std::array<net::const_buffer, 2> bufs{net::buffer(hb), net::buffer(payload, bytes)};
  boost::system::error_code ec;
  net::write(sock, bufs, ec);  // a failed write shows up as the next read's error
}

void reply(FfnServer::Conn& c, uint16_t type, uint64_t id, const void* payload, size_t bytes);

}  // namespace

FfnServer::FfnServer(FfnBackend& ffn, const std::string& host, int port, BatchOptions batch)
    : ffn_(ffn), fp_(Fingerprint::of(ffn.config())), impl_(std::make_unique<Impl>()), batcher_(ffn, batch) {
  AFD_REQUIRE(batch.window.count() >= 0, "--batch-window-us ", batch.window.count(), " is negative");
  AFD_REQUIRE(batch.max_rows > 0, "the FFN server's rows per backend call (", batch.max_rows, ") must be positive");
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(host, ec);
  AFD_REQUIRE(!ec, "--host ", host, " is not an IP address");
  AFD_REQUIRE(port >= 0 && port < 65536, "--port ", port, " is not a TCP port");
  const tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep, ec);
  AFD_REQUIRE(!ec, "cannot listen on ", host, ":", port, ": ", ec.message());
  impl_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  AFD_REQUIRE(!ec, "cannot listen on ", host, ":", port, ": ", ec.message());
  port_ = impl_->acceptor.local_endpoint().port();
  where_ = host + ":" + std::to_string(port_);
}

FfnServer::~FfnServer() = default;

void FfnServer::stop() { impl_->io.stop(); }

void FfnServer::run(bool handle_signals) {
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  std::function<void()> accept = [&] {
    impl_->acceptor.async_accept([&](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      std::lock_guard<std::mutex> l(conns_mu_);
      conns_.remove_if([](const std::shared_ptr<Conn>& c) {  // reap ended connections
        if (!c->finished) return false;
        c->th.join();
        return true;
      });
      s.set_option(tcp::no_delay(true));
      auto c = std::make_shared<Conn>(std::move(s));
      conns_.push_back(c);
      ++served_;
      c->th = std::thread([this, c] { serve(c); });
      accept();
    });
  };
  accept();
  if (handle_signals) {
    impl_->signals.add(SIGTERM);
    impl_->signals.add(SIGINT);
    impl_->signals.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) stop();
    });
  }
  impl_->io.run();
  // Shutting down: wake every connection thread (a blocked read returns end-of-file), then join them.
  stopping_ = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  heartbeat_.join();
  std::lock_guard<std::mutex> l(conns_mu_);
  for (auto& c : conns_) {
    std::lock_guard<std::mutex> s(c->sock_mu);
    if (c->sock.is_open()) ::shutdown(c->sock.native_handle(), SHUT_RDWR);
  }
  for (auto& c : conns_) c->th.join();
  conns_.clear();
}

void FfnServer::heartbeat_loop() {
  while (!stopping_) {
    std::this_thread::sleep_for(kHeartbeat);
    std::lock_guard<std::mutex> l(conns_mu_);
    for (auto& c : conns_) {
      std::lock_guard<std::mutex> w(c->write_mu);
      if (c->busy) write_frame(c->sock, static_cast<uint16_t>(MsgType::kHeartbeat), 0, nullptr, 0);
    }
  }
}

namespace {

void reply(FfnServer::Conn& c, uint16_t type, uint64_t id, const void* payload, size_t bytes) {
  std::lock_guard<std::mutex> w(c.write_mu);
  c.busy = false;
  write_frame(c.sock, type, id, payload, bytes);
}

void reply_error(FfnServer::Conn& c, uint64_t id, const std::string& msg) {
  reply(c, static_cast<uint16_t>(MsgType::kError), id, msg.data(), msg.size());
}

}  // namespace

void FfnServer::serve(const std::shared_ptr<Conn>& cp) {
  Conn& c = *cp;
  c.client = batcher_.add_client();
  std::string why;
  for (;;) {
    uint8_t hb[kHeaderBytes];
    boost::system::error_code ec;
    const size_t got = net::read(c.sock, net::buffer(hb), ec);
    if (ec) {
      if (got) why = "a truncated frame header (" + std::to_string(got) + " bytes)";
      break;  // end of stream: the client left (or the server is stopping)
    }
    FrameHeader h;
    try {
      h = decode_header(hb, c.peer);
    } catch (const Error& e) {
      why = e.what();
      reply_error(c, 0, why);
      break;
    }
    c.in.resize(h.payload_bytes);
    net::read(c.sock, net::buffer(c.in), ec);
    if (ec) {
      why = c.peer + ": a truncated " + type_name(h.type) + " payload (" + ec.message() + ")";
      break;
    }
    if (crc32(c.in.data(), c.in.size()) != h.payload_crc) {
      why = c.peer + ": the " + type_name(h.type) + " frame's payload checksum does not match (corrupt data)";
      reply_error(c, h.request_id, why);
      break;
    }
    try {
      if (!handle(c, h)) break;
    } catch (const std::exception& e) {
      reply_error(c, h.request_id, e.what());  // a bad request or a backend failure; the stream is still in step
    }
  }
  if (!why.empty()) std::fprintf(stderr, "afd-ffn-server: closed the connection of %s\n", why.c_str());
  {
    std::lock_guard<std::mutex> s(c.sock_mu);
    boost::system::error_code ec;
    c.sock.close(ec);
  }
  batcher_.remove_client(c.client);
  c.finished = true;
}

// Serves one well-formed frame; returns false when the connection must close. Throws afd::Error for a request
// that cannot be served (answered with ERROR, connection kept).
bool FfnServer::handle(Conn& c, const FrameHeader& h) {
  const auto type = static_cast<MsgType>(h.type);
  const auto refuse = [&](const std::string& msg) {
    std::fprintf(stderr, "afd-ffn-server: %s\n", msg.c_str());
    reply_error(c, h.request_id, msg);
    return false;
  };
  if (!c.hello_done && type != MsgType::kHello)
    return refuse(c.peer + " sent " + type_name(h.type) + " before HELLO");
  const int hidden = ffn_.config().hidden_size, vocab = ffn_.config().vocab_size;
  PayloadReader r(c.in.data(), c.in.size(), c.peer + ": " + type_name(h.type));
  const auto rows = [&](int n) {
    AFD_REQUIRE(n >= 0 && static_cast<size_t>(n) * hidden * 2 <= r.left(), c.peer, ": ", type_name(h.type),
                " n = ", n, " does not match its payload of ", c.in.size(), " bytes");
    return reinterpret_cast<uint16_t*>(const_cast<uint8_t*>(r.take(static_cast<size_t>(n) * hidden * 2)));
  };
  FfnBatcher::Job job;
  job.client = c.client;
  const auto compute = [&] {
    AFD_REQUIRE(r.left() == 0, c.peer, ": ", type_name(h.type), " payload has ", r.left(), " bytes too many");
    {
      std::lock_guard<std::mutex> w(c.write_mu);
      c.busy = true;  // heartbeats flow from here until the reply
    }
    try {
      batcher_.run(job);
    } catch (...) {
      std::lock_guard<std::mutex> w(c.write_mu);
      c.busy = false;
      throw;
    }
  };
  const uint16_t rt = h.type | kReply;
  switch (type) {
    case MsgType::kHello: {
      const Fingerprint theirs = Fingerprint::decode(c.in.data(), c.in.size(), c.peer);
      if (!(theirs == fp_))
        return refuse("model mismatch: this FFN server (" + where_ + ") serves " + fp_.describe() + " but " +
                      c.peer + " runs " + theirs.describe());
      c.hello_done = true;
      std::vector<uint8_t> mine;
      fp_.encode(mine);
      reply(c, rt, h.request_id, mine.data(), mine.size());
      return true;
    }
    case MsgType::kPing:
      reply(c, rt, h.request_id, nullptr, 0);
      return true;
    case MsgType::kFfnHalf: {
      const int layer = r.get<int32_t>(), n = r.get<int32_t>();
      AFD_REQUIRE(layer >= 0 && layer < ffn_.config().num_layers, c.peer, ": FFN_HALF layer ", layer,
                  " is outside the model's ", ffn_.config().num_layers, " layers");
      uint16_t* x = rows(n);
      job.kind = MsgType::kFfnHalf;
      job.layer = layer;
      job.n = n;
      job.x = x;
      compute();
      reply(c, rt, h.request_id, x, static_cast<size_t>(n) * hidden * 2);
      return true;
    }
    case MsgType::kLogits: {
      const int n = r.get<int32_t>();
      job.kind = MsgType::kLogits;
      job.n = n;
      job.x = rows(n);
      c.logits.resize(static_cast<size_t>(n) * vocab);
      job.logits = c.logits.data();
      compute();
      reply(c, rt, h.request_id, c.logits.data(), c.logits.size() * sizeof(float));
      return true;
    }
    case MsgType::kSample: {
      const int n = r.get<int32_t>();
      job.kind = MsgType::kSample;
      job.n = n;
      job.x = rows(n);
      c.params.resize(n);
      c.steps.resize(n);
      c.ids.resize(n);
      for (auto& p : c.params) {
        p.temperature = r.get<float>();
        p.top_k = r.get<int32_t>();
        p.top_p = r.get<float>();
        p.seed = r.get<uint64_t>();
        validate(p);
      }
      for (auto& s : c.steps) s = r.get<uint64_t>();
      job.params = c.params.data();
      job.steps = c.steps.data();
      job.ids = c.ids.data();
      compute();
      reply(c, rt, h.request_id, c.ids.data(), c.ids.size() * sizeof(int32_t));
      return true;
    }
    case MsgType::kStats: {
      AFD_REQUIRE(r.left() == 0, c.peer, ": STATS payload has ", r.left(), " bytes too many");
      const BatchStats st = batcher_.stats();
      const int64_t v[4] = {st.requests, st.calls, st.rows, st.batched_calls};
      reply(c, rt, h.request_id, v, sizeof v);
      return true;
    }
    default:
      return refuse(c.peer + " sent a frame of unknown type " + std::to_string(h.type));
  }
}

}  // namespace afd::transport
