// Builds without CUDA have no GPU ceilings to measure.
#include "bench/ceilings.h"

namespace afd::bench {
bool measure_gpu_ceilings(Ceilings&, bool) { return false; }
}  // namespace afd::bench
