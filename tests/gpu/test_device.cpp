// The GPU test binary must run on a real GPU: these fail (never skip) when there is none.
#include <catch2/catch.hpp>

#include "moe_gpu/device.h"
#include "util/error.h"

using namespace afd;
using Catch::Matchers::Contains;

TEST_CASE("a CUDA GPU is present and described", "[gpu]") {
  REQUIRE(gpu::device_count() > 0);
  const gpu::DeviceInfo d = gpu::device_info(0);
  CHECK(d.cc_major >= 8);
  CHECK(d.total_bytes > (size_t{1} << 30));
  CHECK(d.free_bytes <= d.total_bytes);
  CHECK(d.sm_count > 0);
  CHECK_THAT(gpu::describe(d), Contains(d.name));
  CHECK_THROWS_WITH(gpu::device_info(gpu::device_count()), Contains("does not exist"));
}
