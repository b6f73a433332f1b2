// cuBLAS status checks, in the style of AFD_CUDA_CHECK (util/error.h): failures throw afd::Error naming the call.
#pragma once

#include <cublas_v2.h>

#include "util/error.h"

#define AFD_CUBLAS_CHECK(expr)                                                                            \
  do {                                                                                                    \
    const cublasStatus_t afd_st_ = (expr);                                                                \
    if (afd_st_ != CUBLAS_STATUS_SUCCESS)                                                                 \
      ::afd::fail("cuBLAS error at ", __FILE__, ":", __LINE__, ": ", #expr, " returned ",               \
                  cublasGetStatusName(afd_st_), " (", cublasGetStatusString(afd_st_), ")");             \
  } while (0)
