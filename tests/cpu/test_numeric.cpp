#include <catch2/catch.hpp>
#include <cmath>

#include "util/numeric.h"

using namespace afd;

TEST_CASE("bf16 rounds to nearest even and round-trips", "[numeric]") {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(-3.5f)) == -3.5f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (1.0); just above rounds up.
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -12))) == 1.0f + std::ldexp(1.0f, -7));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  CHECK(std::isinf(bf16_to_f32(f32_to_bf16(INFINITY))));
  for (uint32_t b = 0; b < 0x7f80; b += 37) CHECK(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(b))) == b);
}

TEST_CASE("f16 decodes normals, subnormals and specials", "[numeric]") {
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f16_to_f32(0xc000) == -2.0f);
  CHECK(f16_to_f32(0x7bff) == 65504.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(std::isinf(f16_to_f32(0x7c00)));
  CHECK(std::isnan(f16_to_f32(0x7e00)));
}

TEST_CASE("fp8 e4m3fn decodes the whole table", "[numeric]") {
  CHECK(fp8_e4m3_to_f32(0x00) == 0.0f);
  CHECK(fp8_e4m3_to_f32(0x38) == 1.0f);
  CHECK(fp8_e4m3_to_f32(0x7e) == 448.0f);
  CHECK(fp8_e4m3_to_f32(0xfe) == -448.0f);
  CHECK(fp8_e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));
  CHECK(fp8_e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));
  CHECK(std::isnan(fp8_e4m3_to_f32(0x7f)));
  CHECK(std::isnan(fp8_e4m3_to_f32(0xff)));
  // Monotone over the positive finite codes.
  for (int v = 1; v < 0x7f; ++v) CHECK(fp8_e4m3_to_f32(static_cast<uint8_t>(v)) > fp8_e4m3_to_f32(static_cast<uint8_t>(v - 1)));
}
