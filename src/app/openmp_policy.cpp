#include "app/openmp_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace afd::app {

void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: then run on with libgomp's default policy
}

}  // namespace afd::app
