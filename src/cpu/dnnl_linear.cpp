#include "cpu/dnnl_linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include "util/error.h"
#include "util/numeric.h"

namespace afd::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::matmul::primitive_desc make_pd(dt wdt, int64_t in, int64_t out) {
  // src [M, K] row-major, weights [K, N] read from W [N, K] row-major (format "ba"), dst [M, N] f32.
  const memory::dim M = DNNL_RUNTIME_DIM_VAL;
  memory::desc src({M, in}, wdt, {in, 1});
  memory::desc wei({in, out}, wdt, tag::ba);
  memory::desc dst({M, out}, dt::f32, {out, 1});
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), engine());
}

}  // namespace

bool dnnl_has_bf16_matmul() {
  static const bool ok = [] {
    try {
      make_pd(dt::bf16, 64, 64);
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

bool dnnl_bf16_by_default() {
  return dnnl_has_bf16_matmul() && dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core_amx;
}

std::string dnnl_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

struct DnnlLinear::Impl {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  std::vector<uint16_t> w_bf16;  // bf16 precision: the weights as given
  std::vector<float> w_f32;      // f32 precision: the weights widened
  std::vector<float> bias;       // [out] or empty
};

DnnlLinear::DnnlLinear(const std::vector<uint16_t>& w, const std::vector<uint16_t>& bias, int out, int in,
                       LinearPrecision p)
    : impl_(std::make_unique<Impl>()), out_(out), in_(in) {
  AFD_CHECK(w.size() == static_cast<size_t>(out) * in, "weight size ", w.size(), " != ", out, "x", in);
  bf16_ = p == LinearPrecision::kBf16 || (p == LinearPrecision::kAuto && dnnl_bf16_by_default());
  AFD_REQUIRE(!bf16_ || dnnl_has_bf16_matmul(), "oneDNN has no bf16 matmul on this CPU (", dnnl_isa_name(), ")");
  if (bf16_) {
    impl_->w_bf16 = w;
  } else {
    impl_->w_f32.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) impl_->w_f32[i] = bf16_to_f32(w[i]);
  }
  for (uint16_t b : bias) impl_->bias.push_back(bf16_to_f32(b));
  impl_->pd = make_pd(bf16_ ? dt::bf16 : dt::f32, in, out);
  impl_->prim = dnnl::matmul(impl_->pd);
}

DnnlLinear::DnnlLinear() = default;
DnnlLinear::DnnlLinear(DnnlLinear&&) noexcept = default;
DnnlLinear& DnnlLinear::operator=(DnnlLinear&&) noexcept = default;
DnnlLinear::~DnnlLinear() = default;

std::string DnnlLinear::impl() const { return impl_ ? impl_->pd.impl_info_str() : "none"; }

void DnnlLinear::forward(const float* x, int m, float* y) const {
  if (m == 0) return;
  AFD_CHECK(impl_ != nullptr);
  dnnl::stream s(engine());
  const memory::dim M = m;
  memory dst(memory::desc({M, out_}, dt::f32, {out_, 1}), engine(), y);
  if (bf16_) {
    thread_local std::vector<uint16_t> xb;
    xb.resize(static_cast<size_t>(m) * in_);
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = f32_to_bf16(x[i]);
    memory src(memory::desc({M, in_}, dt::bf16, {in_, 1}), engine(), xb.data());
    memory wei(memory::desc({in_, out_}, dt::bf16, tag::ba), engine(), impl_->w_bf16.data());
    impl_->prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  } else {
    memory src(memory::desc({M, in_}, dt::f32, {in_, 1}), engine(), const_cast<float*>(x));
    memory wei(memory::desc({in_, out_}, dt::f32, tag::ba), engine(), impl_->w_f32.data());
    impl_->prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  }
  s.wait();
  if (!impl_->bias.empty())
    for (int i = 0; i < m; ++i)
      for (int o = 0; o < out_; ++o) y[static_cast<size_t>(i) * out_ + o] += impl_->bias[o];
}

}  // namespace afd::cpu
