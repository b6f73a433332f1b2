// The CPU implementation of the FFN side (oneDNN matmuls), so that the whole system runs and is tested on machines
// without a GPU. It follows transformers' bf16 rounding points (MODEL_SPEC.md section 7): bf16 activations, fp32
// accumulation, fp32 norm statistics and routing, one bf16 rounding per op.
#pragma once

#include <memory>
#include <vector>

#include "cpu/dnnl_linear.h"
#include "iface/ffn_backend.h"
#include "model/weights.h"

namespace afd {

class CpuFfn : public FfnBackend {
 public:
  // `w` must hold the kWeightsFfn and kWeightsHead parts.
  explicit CpuFfn(std::shared_ptr<const Bf16Weights> w, cpu::LinearPrecision p = cpu::LinearPrecision::kAuto);
  ~CpuFfn() override;

  std::string name() const override;
  const ModelConfig& config() const override { return w_->cfg; }
  void ffn_half(int layer, uint16_t* x, int n) override;
  void logits(const uint16_t* x, int n, float* out) override;
  void sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step,
              int32_t* out_ids) override;

  // For tests: the experts chosen for each token by the last ffn_half of a MoE layer, [n, top_k].
  const std::vector<int>& last_routing() const { return last_idx_; }

 private:
  struct MlpOps {
    cpu::DnnlLinear gate, up, down;
  };
  struct LayerOps;
  void mlp(const MlpOps& m, const float* x, int rows, float* out);
  void rmsnorm_rows(const uint16_t* x, const std::vector<uint16_t>& w, int n, float* out) const;

  std::shared_ptr<const Bf16Weights> w_;
  std::vector<std::unique_ptr<LayerOps>> layers_;
  cpu::DnnlLinear lm_head_;
  // Scratch, grown on demand and reused (no allocation once warm).
  std::vector<float> xn_, acc_, logits_, gbuf_, ubuf_, rows_in_, rows_out_, shared_, sample_logits_;
  std::vector<int> start_, fill_, order_;
  std::vector<int> last_idx_;
  std::vector<float> last_w_;
};

}  // namespace afd
