// Token permutation by expert, entirely on the device (no host sync): count the (token, slot) assignments per
// expert, scan them into row offsets and GEMM tile offsets, and scatter each assignment to a row of its expert's
// contiguous block; one single-block launch does all three (counts and cursors live in shared memory).
// Afterwards:
//   rows of expert e      = [group_offset[e], group_offset[e+1])  (in the permuted row space, n*k rows in all)
//   row_token[r]          = the token whose activations row r reads (the grouped GEMM's row gather)
//   slot_row[t*k + j]     = the row holding token t's j-th expert output (the combine's gather)
//   tile_offset[e]        = first M tile of expert e for tiles of `tile_rows` rows; tile_offset[E] = total tiles
// The order of rows inside one expert's block is whatever the atomics give; every row is computed independently,
// so results do not depend on it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace afd::cuda {

struct PermuteParams {
  const int32_t* ids;        // [tokens, k] chosen experts
  int32_t* group_offset;     // [experts + 1] out
  int32_t* tile_offset;      // [experts + 1] out
  int32_t* row_token;        // [tokens * k] out
  int32_t* slot_row;         // [tokens * k] out
  int tokens, k, experts;   // experts: how many this GPU holds, ids expert_lo .. expert_lo + experts - 1
  int tile_rows;             // BM of the grouped GEMM that will read these offsets
  int expert_lo;             // expert parallelism: first expert held here; assignments to experts outside the
                             // range get slot_row = -1 and no row (offsets and rows are in local expert indices)
};

void moe_permute(const PermuteParams& p, cudaStream_t stream);

}  // namespace afd::cuda
