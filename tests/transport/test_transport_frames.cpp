// The TCP transport against a fake FFN backend in this process: tagged payloads end to end, the checksum, a model
// mismatch, malformed frames from a raw socket.
#include <utility>  // first: Boost 1.74's asio headers use std::exchange without including it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/crc.hpp>
#include <catch2/catch.hpp>
#include <cstdio>

#include "fake_ffn.h"
#include "ffn_server_process.h"
#include "transport/remote_ffn.h"
#include "util/error.h"

namespace afd::test {
namespace {

namespace net = boost::asio;
using net::ip::tcp;
using Catch::Matchers::Contains;

// Sends bytes on a fresh connection; returns the ERROR text the server answers, after checking it then closes.
std::string send_bad(int port, const std::vector<uint8_t>& bytes) {
  net::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  net::write(s, net::buffer(bytes));
  uint8_t hb[transport::kHeaderBytes];
  net::read(s, net::buffer(hb));
  const transport::FrameHeader h = transport::decode_header(hb, "test");
  REQUIRE(h.type == static_cast<uint16_t>(transport::MsgType::kError));
  std::string msg(h.payload_bytes, '\0');
  net::read(s, net::buffer(msg));
  boost::system::error_code ec;
  uint8_t more;
  net::read(s, net::buffer(&more, 1), ec);
  // The server closed this connection: end of file, or a reset when it left part of the bad frame unread.
  CHECK((ec == net::error::eof || ec == net::error::connection_reset));
  return msg;
}

}  // namespace

TEST_CASE("transport: the frame CRC-32 equals Boost's reference CRC-32", "[transport]") {
  for (size_t n : {0, 1, 7, 8, 9, 63, 1000, 4097}) {
    std::vector<uint8_t> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 131 + n);
    boost::crc_32_type ref;
    ref.process_bytes(b.data(), n);
    CAPTURE(n);
    CHECK(transport::crc32(b.data(), n) == ref.checksum());
    if (n) {
      b[n / 2] ^= 0x10;
      CHECK(transport::crc32(b.data(), n) != ref.checksum());
    }
  }
}

TEST_CASE("transport: tagged FFN_HALF LOGITS and SAMPLE payloads round-trip exactly", "[transport]") {
  FakeFfn fake(fake_config());
  InProcessServer srv(fake);
  transport::RemoteFfn remote(srv.address(), fake.config());
  const int h = 8, V = 20;
  for (int n : {1, 3, 17}) {
    for (int layer = 0; layer < 3; ++layer) {
      std::vector<uint16_t> x = tagged_rows(n, h, layer + n), want = x;
      fake.ffn_half(layer, want.data(), n);
      remote.ffn_half(layer, x.data(), n);
      REQUIRE(x == want);
    }
    const std::vector<uint16_t> x = tagged_rows(n, h, 5);
    std::vector<float> got(static_cast<size_t>(n) * V), want(got.size());
    remote.logits(x.data(), n, got.data());
    fake.logits(x.data(), n, want.data());
    REQUIRE(got == want);
    std::vector<SamplingParams> p(n);
    std::vector<uint64_t> step(n);
    for (int r = 0; r < n; ++r) {
      p[r].top_k = r + 1;
      p[r].seed = 100 + r;
      step[r] = 7 * r;
    }
    std::vector<int32_t> ids(n, -1), want_ids(n, -2);
    remote.sample(x.data(), n, p.data(), step.data(), ids.data());
    fake.sample(x.data(), n, p.data(), step.data(), want_ids.data());
    REQUIRE(ids == want_ids);
  }
  CHECK(remote.reconnects() == 0);
}

TEST_CASE("transport: a model fingerprint mismatch is refused naming both sides", "[transport]") {
  FakeFfn fake(fake_config(8));
  InProcessServer srv(fake);
  try {
    transport::RemoteFfn remote(srv.address(), fake_config(16));
    FAIL("connected to a server of another model");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Contains(srv.address()));
    CHECK_THAT(m, Contains("hidden 8"));
    CHECK_THAT(m, Contains("hidden 16"));
  }
  transport::RemoteFfn ok(srv.address(), fake_config(8));  // the server still serves the right model
  CHECK(ok.ping() < 1.0);
}

TEST_CASE("transport: malformed frames are rejected and the connection closed while other clients are served",
          "[transport]") {
  FakeFfn fake(fake_config());
  InProcessServer srv(fake);
  transport::RemoteFfn good(srv.address(), fake.config());  // connected before the bad ones, used after them
  const auto hello = hello_payload(fake.config());
  CHECK_THAT(send_bad(srv.port(), frame(1, hello, 0xdeadbeef)), Contains("magic"));
  CHECK_THAT(send_bad(srv.port(), frame(1, hello, transport::kMagic, 2)), Contains("version is 2"));
  auto bad_crc = frame(1, hello);
  bad_crc.back() ^= 0x5a;  // one payload byte flipped after the checksum was computed
  CHECK_THAT(send_bad(srv.port(), bad_crc), Contains("payload checksum"));
  auto bad_header = frame(1, hello);
  bad_header[9] ^= 1;  // the request id changed after the header checksum was computed
  CHECK_THAT(send_bad(srv.port(), bad_header), Contains("header checksum"));
  {
    transport::FrameHeader h;
    h.type = 2;
    h.payload_bytes = transport::kMaxPayload + 1;
    std::vector<uint8_t> b(transport::kHeaderBytes);
    transport::encode_header(h, b.data());
    CHECK_THAT(send_bad(srv.port(), b), Contains("exceeds the limit"));
  }
  CHECK_THAT(send_bad(srv.port(), frame(5, {})), Contains("before HELLO"));
  {
    auto b = frame(1, hello);  // a valid HELLO, then a frame of an unknown type
    auto unknown = frame(99, {});
    b.insert(b.end(), unknown.begin(), unknown.end());
    net::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(srv.port())));
    net::write(s, net::buffer(b));
    uint8_t hb[transport::kHeaderBytes];
    net::read(s, net::buffer(hb));
    auto h = transport::decode_header(hb, "test");
    CHECK(h.type == (1 | transport::kReply));
    std::vector<uint8_t> skip(h.payload_bytes);
    net::read(s, net::buffer(skip));
    net::read(s, net::buffer(hb));
    CHECK(transport::decode_header(hb, "test").type == static_cast<uint16_t>(transport::MsgType::kError));
  }
  {  // truncated: a header announcing 1000 bytes, 10 sent, then the client leaves
    net::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(srv.port())));
    auto b = frame(1, std::vector<uint8_t>(1000, 7));
    b.resize(transport::kHeaderBytes + 10);
    net::write(s, net::buffer(b));
  }
  {  // a well-formed FFN_HALF whose n does not match its payload: ERROR, and the connection stays usable
    std::vector<uint16_t> x = tagged_rows(2, 8, 1);
    CHECK_THROWS_WITH(good.ffn_half(7, x.data(), 2), Contains("layer 7"));
  }
  std::vector<uint16_t> x = tagged_rows(4, 8, 3), want = x;
  fake.ffn_half(1, want.data(), 4);
  good.ffn_half(1, x.data(), 4);
  CHECK(x == want);
  CHECK(good.reconnects() == 0);
}

}  // namespace afd::test
