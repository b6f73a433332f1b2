#include "attn_cpu/matmul.h"

#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;


dnnl::memory::desc Matmul::act_desc(int64_t m, int64_t cols, dt type) const {
  if (batch_ == 1) return dnnl::memory::desc({m, cols}, type, tag::ab);
  return dnnl::memory::desc({batch_, m, cols}, type, tag::abc);
}

Matmul::Matmul(const dnnl::engine& eng, int batch, int k, int n, const uint16_t* w_kn, bool use_bf16)
    : eng_(eng), batch_(batch), k_(k), n_(n), bf16_(use_bf16) {
  const int64_t count = static_cast<int64_t>(batch) * k * n;
  const dt wt = bf16_ ? dt::bf16 : dt::f32;
  const dnnl::memory::dims wdims = batch == 1 ? dnnl::memory::dims{k, n} : dnnl::memory::dims{batch, k, n};
  const dnnl::memory::desc plain(wdims, wt, batch == 1 ? tag::ab : tag::abc);
  dnnl::memory plain_mem(plain, eng_);
  if (bf16_) {
    std::copy_n(w_kn, count, static_cast<uint16_t*>(plain_mem.get_data_handle()));
  } else {
    float* wf = static_cast<float*>(plain_mem.get_data_handle());
    for (int64_t i = 0; i < count; ++i) wf[i] = bf16_to_f32(w_kn[i]);
  }
  // Preferred: one primitive with a run-time M and weights in the layout it asks for (reordered once, here).
  try {
    const dnnl::memory::desc wany(wdims, wt, tag::any);
    dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(act_desc(DNNL_RUNTIME_DIM_VAL, k, wt), wany, act_desc(DNNL_RUNTIME_DIM_VAL, n, dt::f32)),
        eng_);
    weights_ = dnnl::memory(pd.weights_desc(), eng_);
    dnnl::stream s(eng_);
    dnnl::reorder(plain_mem, weights_).execute(s, plain_mem, weights_);
    s.wait();
    runtime_prim_ = dnnl::matmul(pd);
    impl_ = pd.impl_info_str();
    runtime_m_ = true;
  } catch (const dnnl::error&) {
    weights_ = plain_mem;  // fallback: plain weights, a primitive per m
    runtime_m_ = false;
  }
}

dnnl::matmul& Matmul::primitive_for(int m) {
  auto it = per_m_.find(m);
  if (it != per_m_.end()) return it->second;
  const dt wt = bf16_ ? dt::bf16 : dt::f32;
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(act_desc(m, k_, wt), weights_.get_desc(), act_desc(m, n_, dt::f32)),
                                    eng_);
    impl_ = pd.impl_info_str();
    return per_m_.emplace(m, dnnl::matmul(pd)).first->second;
  } catch (const dnnl::error& e) {
    fail("oneDNN cannot create a ", bf16_ ? "bf16" : "f32", " matmul of m=", m, " k=", k_, " n=", n_, ": ", e.what());
  }
}

void Matmul::run(dnnl::stream& s, const uint16_t* x, int m, float* y) {
  if (m <= 0) return;
  const int64_t count = static_cast<int64_t>(batch_) * m * k_;
  void* src = const_cast<uint16_t*>(x);
  if (!bf16_) {
    if (static_cast<int64_t>(xf_.size()) < count) xf_.resize(count);
    for (int64_t i = 0; i < count; ++i) xf_[i] = bf16_to_f32(x[i]);
    src = xf_.data();
  }
  const dt wt = bf16_ ? dt::bf16 : dt::f32;
  dnnl::memory src_mem(act_desc(m, k_, wt), eng_, src);
  dnnl::memory dst_mem(act_desc(m, n_, dt::f32), eng_, y);
  dnnl::matmul& prim = runtime_m_ ? runtime_prim_ : primitive_for(m);
  prim.execute(s, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_mem}});
  s.wait();
}

}  // namespace afd::attn
