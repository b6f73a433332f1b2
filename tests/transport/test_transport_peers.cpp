// The TCP transport's client against a misbehaving or silent server, heartbeats over a long computation, and the
// per-call overhead on loopback.
#include <utility>  // first: Boost 1.74's asio headers use std::exchange without including it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <cstdio>

#include "fake_ffn.h"
#include "ffn_server_process.h"
#include "transport/remote_ffn.h"
#include "util/error.h"

namespace afd::test {

namespace net = boost::asio;
using net::ip::tcp;
using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;

TEST_CASE("transport: a misbehaving server fails the client's call cleanly", "[transport]") {
  net::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const int port = acc.local_endpoint().port();
  const ModelConfig cfg = fake_config();
  // Answers the first HELLO correctly, then each later request with a frame corrupted in one of several ways,
  // and the last connection by going silent (a hung peer).
  std::thread fake_server([&] {
    for (int conn = 0; conn < 4; ++conn) {
      tcp::socket s(io);
      acc.accept(s);
      uint8_t hb[transport::kHeaderBytes];
      net::read(s, net::buffer(hb));
      auto h = transport::decode_header(hb, "fake server");
      std::vector<uint8_t> req(h.payload_bytes);
      net::read(s, net::buffer(req));
      net::write(s, net::buffer(frame(1 | transport::kReply, hello_payload(cfg), transport::kMagic,
                                      transport::kVersion, h.request_id)));
      boost::system::error_code ec;
      net::read(s, net::buffer(hb), ec);  // the next request's header
      if (ec) continue;
      h = transport::decode_header(hb, "fake server");
      req.resize(h.payload_bytes);
      net::read(s, net::buffer(req), ec);
      if (conn == 0) net::write(s, net::buffer(frame(2 | transport::kReply, {1, 2, 3}, 0x12345678)), ec);
      if (conn == 1) {
        auto f = frame(2 | transport::kReply, std::vector<uint8_t>(16, 9));
        f.back() ^= 1;
        net::write(s, net::buffer(f), ec);
      }
      if (conn == 2) net::write(s, net::buffer(frame(2 | transport::kReply, std::vector<uint8_t>(16, 9))), ec);
      if (conn == 3) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      net::read(s, net::buffer(hb), ec);  // until the client closes
    }
  });
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  std::vector<uint16_t> x = tagged_rows(1, 8, 1);
  {
    transport::RemoteFfn r(addr, cfg);
    CHECK_THROWS_WITH(r.ffn_half(0, x.data(), 1), Contains("magic"));
    CHECK_FALSE(r.connected());
  }
  {
    transport::RemoteFfn r(addr, cfg);
    CHECK_THROWS_WITH(r.ffn_half(0, x.data(), 1), Contains("payload checksum"));
  }
  {
    transport::RemoteFfn r(addr, cfg);
    CHECK_THROWS_WITH(r.ffn_half(0, x.data(), 1), Contains("out of step"));
  }
  {
    transport::RemoteFfn r(addr, cfg);
    const auto b = Clock::now();
    CHECK_THROWS_WITH(r.ffn_half(0, x.data(), 1), Contains(addr + " went away"));
    const double s = std::chrono::duration<double>(Clock::now() - b).count();
    std::printf("transport: a silent peer was detected after %.0f ms\n", s * 1e3);
    CHECK(s >= 0.7);
    CHECK(s < 1.0);
  }
  fake_server.join();
}

TEST_CASE("transport: heartbeats keep a long computation alive and the per-call overhead on loopback is small",
          "[transport]") {
  FakeFfn slow(fake_config(), 1200);  // longer than the dead-peer limit
  InProcessServer srv(slow);
  transport::RemoteFfn remote(srv.address(), slow.config());
  std::vector<uint16_t> x = tagged_rows(2, 8, 4), want = x;
  FakeFfn(fake_config()).ffn_half(2, want.data(), 2);
  remote.ffn_half(2, x.data(), 2);
  CHECK(x == want);

  FakeFfn fast(fake_config(2048));
  InProcessServer srv2(fast);
  transport::RemoteFfn r2(srv2.address(), fast.config());
  for (int i = 0; i < 20; ++i) r2.ping();  // warm
  const int calls = 500;
  auto b = Clock::now();
  for (int i = 0; i < calls; ++i) r2.ping();
  const double ping_us = std::chrono::duration<double, std::micro>(Clock::now() - b).count() / calls;
  std::vector<uint16_t> rows = tagged_rows(8, 2048, 1);
  b = Clock::now();
  for (int i = 0; i < calls; ++i) r2.ffn_half(0, rows.data(), 8);
  const double half_us = std::chrono::duration<double, std::micro>(Clock::now() - b).count() / calls;
  std::printf("transport: loopback PING round trip %.1f us; FFN_HALF of 8 x 2048 bf16 (32 KiB each way) %.1f us\n",
              ping_us, half_us);
  CHECK(ping_us < 2000);
  CHECK(half_us < 5000);
}

}  // namespace afd::test
