// oneDNN (Debian's build) runs its matmuls on OpenMP threads, and libgomp's default wait policy keeps those threads
// spinning after every call, stealing the cores the attention worker pool runs its kernels on. Measured on the GPU
// host (afd-bench, V2-Lite shapes, 4 layers, batch 32, context 1024, M = 1): 4073 tok/s spinning, 4824 tok/s with
// OMP_WAIT_POLICY=PASSIVE, prefill 3463 -> 8499 tok/s. libgomp reads the variable when it is loaded, so a program
// that wants the passive policy must have it in its environment from the start.
#pragma once

namespace afd::app {

// When OMP_WAIT_POLICY is unset: sets it to PASSIVE and re-executes the program with the same arguments (once).
// A value the user set is left alone. Returns normally when no re-execution happened (or it failed).
void prefer_passive_openmp(char** argv);

}  // namespace afd::app
