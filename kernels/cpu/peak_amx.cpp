// AMX-BF16 peak loop (compiled with -mamx-tile -mamx-bf16; reached only through peak_flops after cpu_supports,
// which obtained the XTILEDATA permission): four C tiles fed by resident A / B tiles, 16 x 16 x 32 x 2 FLOP each.
#include <cstdint>

#include "cpu/amx_tiles.h"
#include "cpu/peak.h"

namespace afd::cpu {

double peak_loop_amx(int64_t iters) {
  configure_full_tiles(6);  // C 0-3, A 4, B 5
  alignas(64) static const uint16_t kZeros[16 * 32] = {};  // zero operands: the products are exact zeros
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, kZeros, 64);
  _tile_loadd(5, kZeros, 64);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 5);
    _tile_dpbf16ps(1, 4, 5);
    _tile_dpbf16ps(2, 4, 5);
    _tile_dpbf16ps(3, 4, 5);
  }
  alignas(64) float c[16 * 16];
  _tile_stored(0, c, 64);
  _tile_release();
  volatile float sink = c[0];
  (void)sink;
  return 16384.0 * 4 * static_cast<double>(iters);
}

}  // namespace afd::cpu
