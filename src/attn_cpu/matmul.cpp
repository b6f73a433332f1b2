#include "attn_cpu/matmul.h"

#include <tuple>

#include "cpu/dnnl_linear.h"
#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;


dnnl::memory::desc Matmul::act_desc(int64_t m, int64_t cols, dt type) const {
  if (batch_ == 1) return dnnl::memory::desc({m, cols}, type, tag::ab);
  return dnnl::memory::desc({batch_, m, cols}, type, tag::abc);
}

namespace {

// The weights' blocked layout is the one a primitive of this many rows asks for; every m runs with it.
constexpr int kLayoutRows = 16;
// Row counts probed before the blocked layout is kept: none may land on oneDNN's reference kernel.
constexpr int kProbeRows[] = {1, 2, 3, 5, 8, 16, 31, 64, 127, 256, 512, 1024};

bool is_reference(const std::string& impl) { return impl.find("ref") != std::string::npos; }

}  // namespace

bool fixed_m_by_default() { return !cpu::dnnl_bf16_by_default(); }

bool projection_bf16_default() {
  static const bool yes = [] {
    if (cpu::dnnl_bf16_by_default()) return true;
    if (!cpu::dnnl_has_bf16_matmul()) return false;
    try {
      const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
      const dnnl::memory::desc x({16, 256}, dt::bf16, tag::ab), w({256, 256}, dt::bf16, tag::any),
          y({16, 256}, dt::f32, tag::ab);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x, w, y), eng);
      return std::string(pd.impl_info_str()).rfind("brg", 0) == 0;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return yes;
}

bool MatmulCache::Key::operator<(const Key& o) const {
  return std::tie(batch, k, n, m, bf16, blocked) < std::tie(o.batch, o.k, o.n, o.m, o.bf16, o.blocked);
}

dnnl::matmul::primitive_desc Matmul::fixed_desc(int m, const dnnl::memory::desc& weights) const {
  const dt wt = bf16_ ? dt::bf16 : dt::f32;
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(act_desc(m, k_, wt), weights, act_desc(m, n_, dt::f32)), eng_);
}

bool Matmul::try_fixed_m(const dnnl::memory& plain) {
  const dt wt = bf16_ ? dt::bf16 : dt::f32;
  const dnnl::memory::dims wdims = batch_ == 1 ? dnnl::memory::dims{k_, n_} : dnnl::memory::dims{batch_, k_, n_};
  try {
    const dnnl::matmul::primitive_desc layout = fixed_desc(kLayoutRows, dnnl::memory::desc(wdims, wt, tag::any));
    const dnnl::memory::desc wd = layout.weights_desc();
    const MatmulCache::Key shape{batch_, k_, n_, 0, bf16_, true};
    {
      std::lock_guard<std::mutex> lock(cache_->mu_);
      auto it = cache_->layout_ok_.find(shape);
      if (it == cache_->layout_ok_.end()) {
        bool ok = !is_reference(layout.impl_info_str());
        for (int m : kProbeRows) ok = ok && !is_reference(fixed_desc(m, wd).impl_info_str());
        it = cache_->layout_ok_.emplace(shape, ok).first;
      }
      if (!it->second) return false;
    }
    weights_ = dnnl::memory(wd, eng_);
    dnnl::stream s(eng_);
    dnnl::reorder(plain, weights_).execute(s, const_cast<dnnl::memory&>(plain), weights_);
    s.wait();
    impl_ = layout.impl_info_str();
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

const dnnl::matmul& Matmul::primitive_for(int m) {
  const MatmulCache::Key key{batch_, k_, n_, m, bf16_, fixed_m_};
  std::lock_guard<std::mutex> lock(cache_->mu_);
  auto it = cache_->prims_.find(key);
  if (it == cache_->prims_.end()) {
    try {
      const dnnl::matmul::primitive_desc pd = fixed_desc(m, weights_.get_desc());
      it = cache_->prims_.emplace(key, MatmulCache::Entry{dnnl::matmul(pd), pd.impl_info_str()}).first;
    } catch (const dnnl::error& e) {
      fail("oneDNN cannot create a ", bf16_ ? "bf16" : "f32", " matmul of m=", m, " k=", k_, " n=", n_, ": ", e.what());
    }
  }
  if (impl_.empty()) impl_ = it->second.impl;  // the plain fallback reports its first primitive's
  return it->second.prim;
}

Matmul::Matmul(const dnnl::engine& eng, MatmulCache& cache, int batch, int k, int n, const uint16_t* w_kn,
               bool use_bf16, bool fixed_m)
    : eng_(eng), cache_(&cache), batch_(batch), k_(k), n_(n), bf16_(use_bf16) {
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
  // Preferred: blocked weights and fixed-M primitives (see the header). Next: one primitive with a run-time M and
  // weights in the layout it asks for (reordered once, here).
  if (fixed_m && try_fixed_m(plain_mem)) {
    fixed_m_ = true;
    return;
  }
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
  const dnnl::matmul& prim = runtime_m_ ? runtime_prim_ : primitive_for(m);
  prim.execute(s, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_mem}});
  s.wait();
}

}  // namespace afd::attn
