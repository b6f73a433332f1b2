// Reads checkpoint tensors into float32 or bf16 buffers, checking each against the shape the config implies.
// Handles BF16 / F16 / F32 and FP8 e4m3 with a `<name>_scale_inv` block-scale sibling (ceil-div block indexing,
// MODEL_SPEC.md section 4), for 2-D tensors and for slabs of the fused 3-D expert tensors. Every byte is read once,
// straight from the mapping into the destination; progress is reported in bytes read.
//
// Element types: float (exact widening; fp8 dequantised as fp32(q) * scale, what transformers computes for an fp32
// model) and uint16_t = bf16 bits (RNE; fp8 dequantised as bf16(fp32(q) * scale), DeepSeek's weight_dequant).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "util/progress.h"

namespace afd {

class WeightReader {
 public:
  WeightReader(const st::Checkpoint& ckpt, const ModelConfig& cfg, Progress* progress);

  bool has(const std::string& name) const { return ckpt_.find(name) != nullptr; }

  // A tensor of exactly `shape` (1-D norms and biases, 2-D matrices).
  template <typename T>
  std::vector<T> read(const std::string& name, const std::vector<int64_t>& shape);
  // Slab `index` of a 3-D tensor of shape [count, rows, cols] (the fused expert layout), as [rows, cols].
  template <typename T>
  std::vector<T> read_slab(const std::string& name, int64_t index, int64_t count, int64_t rows, int64_t cols);
  // An F8_E4M3 [rows, cols] tensor as stored: its bytes and its block scales (as fp32), checked as read() checks.
  // False, reading nothing, when the tensor is not F8_E4M3.
  bool read_fp8(const std::string& name, int64_t rows, int64_t cols, std::vector<uint8_t>& q,
                std::vector<float>& scales);

 private:
  // Tensor `name`, which must have exactly `shape` (the error names the file, the tensor and both shapes).
  const st::TensorInfo& tensor(const std::string& name, const std::vector<int64_t>& shape) const;
  template <typename T>
  void convert(const st::TensorInfo& t, int64_t slab, int64_t rows, int64_t cols, T* out);
  // The `_scale_inv` sibling of fp8 tensor t (slab < 0: a 2-D tensor), its shape and dtype checked.
  const st::TensorInfo& fp8_scales(const st::TensorInfo& t, int64_t slab, int64_t rows, int64_t cols) const;
  const st::Checkpoint& ckpt_;
  const ModelConfig& cfg_;
  Progress* progress_;
};

}  // namespace afd
