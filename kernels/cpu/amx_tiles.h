// AMX tile configuration shared by the AMX files (include only from files compiled with -mamx-tile, and call only
// after cpu_supports(kAmx), which obtained the XTILEDATA permission).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace afd::cpu {

// The LDTILECFG memory layout (palette 1).
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0 .. count - 1 as full tiles: 16 rows of 64 bytes (16 x 16 f32, or 16 x 32 bf16, or 16 pair rows x 16
// dwords). The rest unconfigured.
inline void configure_full_tiles(int count) {
  AmxTileConfig cfg;
  for (int t = 0; t < count; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

}  // namespace afd::cpu
