#include "moe_gpu/gpu_ffn.h"
#include "moe_gpu/gpu_ffn_peer.h"

#include <cstring>
#include <sstream>

#include "cuda/grouped_gemm.cuh"
#include "cuda/sample.cuh"
#include "moe_gpu/blas_check.h"
#include "moe_gpu/device.h"
#include "util/numeric.h"

namespace afd::gpu {

namespace {

// Copies `count` host elements to `dst` when uploading (a planning pass passes dst == null).
template <typename T>
void put(void* dst, const T* src, size_t count, bool upload) {
  if (upload && count) AFD_CUDA_CHECK(cudaMemcpy(dst, src, count * sizeof(T), cudaMemcpyHostToDevice));
}

void require_no_bias(const Linear<uint16_t>& l, int layer) {
  AFD_REQUIRE(l.b.empty(), "GpuFfn: layer ", layer, " has MLP biases (mlp_bias), which it does not support");
}

// Uploads gate and up ([width, hidden] each) as one [2 * width, hidden] matrix with the rows interleaved by 8, the
// layout the fused SiLU·mul epilogue reads (cuda::interleaved_gate_up_source).
void put_gate_up(bf16* dst, const Linear<uint16_t>& gate, const Linear<uint16_t>& up, int layer, bool upload) {
  const int width = gate.out, in = gate.in;
  AFD_REQUIRE(width % 8 == 0 && up.out == width && up.in == in, "GpuFfn: layer ", layer, " has an MLP of width ",
              width, " (gate ", gate.out, "x", gate.in, ", up ", up.out, "x", up.in,
              "); it needs equal gate/up shapes and a width that is a multiple of 8");
  if (!upload) return;
  std::vector<uint16_t> rows(static_cast<size_t>(2) * width * in);
  for (int r = 0; r < 2 * width; ++r) {
    const int src = cuda::interleaved_gate_up_source(r, width);
    const uint16_t* from = src < width ? gate.w.data() + static_cast<size_t>(src) * in
                                       : up.w.data() + static_cast<size_t>(src - width) * in;
    std::memcpy(rows.data() + static_cast<size_t>(r) * in, from, static_cast<size_t>(in) * 2);
  }
  put(dst, rows.data(), rows.size(), true);
}

// Kept-fp8 expert matrices (Linear::q8/s8): rows of e4m3 bytes with per-row scales (the block scales of each row's
// 128-row block), the layout the grouped GEMM's fp8 path reads (cuda::GroupedGemmParams::w8).
struct Fp8Rows {
  std::vector<uint8_t> q;
  std::vector<float> s;
};
void append_fp8_row(const Linear<uint16_t>& l, int r, int block_rows, Fp8Rows& out) {
  const int sc = cuda::fp8_scale_cols(l.in);
  out.q.insert(out.q.end(), l.q8.begin() + static_cast<size_t>(r) * l.in, l.q8.begin() + static_cast<size_t>(r + 1) * l.in);
  out.s.insert(out.s.end(), l.s8.begin() + static_cast<size_t>(r / block_rows) * sc,
               l.s8.begin() + static_cast<size_t>(r / block_rows + 1) * sc);
}
void require_fp8(const Linear<uint16_t>& l, int layer, int expert) {
  AFD_REQUIRE(l.is_fp8() && l.in % 16 == 0, "GpuFfn: layer ", layer, " expert ", expert,
              " mixes fp8 and other matrices, or has an input width (", l.in, ") that is not a multiple of 16");
}
// An fp8 expert's gate/up, rows interleaved as put_gate_up does, and its down rows.
void put_expert_fp8(const Mlp<uint16_t>& m, int layer, int expert, int block_rows, uint8_t* gu, float* gu_s,
                    uint8_t* dn, float* dn_s, bool upload) {
  for (const Linear<uint16_t>* l : {&m.gate, &m.up, &m.down}) require_fp8(*l, layer, expert);
  if (!upload) return;
  Fp8Rows a, b;
  const int width = m.gate.out;
  for (int r = 0; r < 2 * width; ++r) {
    const int src = cuda::interleaved_gate_up_source(r, width);
    append_fp8_row(src < width ? m.gate : m.up, src < width ? src : src - width, block_rows, a);
  }
  for (int r = 0; r < m.down.out; ++r) append_fp8_row(m.down, r, block_rows, b);
  put(gu, a.q.data(), a.q.size(), true);
  put(gu_s, a.s.data(), a.s.size(), true);
  put(dn, b.q.data(), b.q.size(), true);
  put(dn_s, b.s.data(), b.s.size(), true);
}

// Places an MLP as [2 * width, hidden] interleaved gate/up rows and [hidden, width] down.
void place_mlp(const Mlp<uint16_t>& m, int layer, DeviceArena& a, bool upload, const bf16** gate_up,
               const bf16** down) {
  require_no_bias(m.gate, layer);
  require_no_bias(m.up, layer);
  require_no_bias(m.down, layer);
  bf16* gu = a.take<bf16>(m.gate.w.size() + m.up.w.size());
  bf16* d = a.take<bf16>(m.down.w.size());
  put_gate_up(gu, m.gate, m.up, layer, upload);
  put(d, m.down.w.data(), m.down.w.size(), upload);
  *gate_up = gu;
  *down = d;
}

}  // namespace

void GpuFfn::place_weights(DeviceArena& a, bool upload, int lo, int count, bool home,
                           std::vector<FfnLayerDev>& layers) {
  const ModelConfig& c = w_->cfg;
  layers.assign(c.num_layers, FfnLayerDev{});
  for (int l = 0; l < c.num_layers; ++l) {
    const FfnLayer<uint16_t>& src = w_->ffn[l];
    FfnLayerDev& L = layers[l];
    L.moe = src.moe;
    if (!src.moe && !home) continue;  // dense layers run on the first GPU only
    bf16* norm = a.take<bf16>(src.post_norm.size());
    put(norm, src.post_norm.data(), src.post_norm.size(), upload);
    L.post_norm = norm;
    if (!src.moe) {
      place_mlp(src.dense, l, a, upload, &L.dense_gate_up, &L.dense_down);
      L.dense_width = src.dense.gate.out;
      continue;
    }
    const int E = c.n_routed_experts, h = c.hidden_size;
    AFD_REQUIRE(static_cast<int>(src.experts.size()) == E, "GpuFfn: layer ", l, " has ", src.experts.size(),
                " experts, config says ", E);
    bf16* r = a.take<bf16>(src.router.w.size());
    put(r, src.router.w.data(), src.router.w.size(), upload);
    L.router = r;
    L.router_fp32_logits = c.arch == Arch::kDeepSeekV3 || c.arch == Arch::kDeepSeekV2;
    if (!src.router_bias.empty()) {
      float* b = a.take<float>(src.router_bias.size());
      put(b, src.router_bias.data(), src.router_bias.size(), upload);
      L.router_bias = b;
    }
    // This GPU's experts stacked [count, 2I, h] and [count, h, I] so the grouped GEMM indexes local expert e at a
    // fixed stride.
    const int I = src.experts[0].gate.out;
    const size_t gu_elems = static_cast<size_t>(2) * I * h, d_elems = static_cast<size_t>(h) * I;
    // Kept-fp8 experts (all or none of a layer's) stay fp8 on the GPU: bytes plus per-row scales.
    const bool f8 = src.experts[0].gate.is_fp8();
    const size_t gu_sc = static_cast<size_t>(2) * I * cuda::fp8_scale_cols(h);
    const size_t d_sc = static_cast<size_t>(h) * cuda::fp8_scale_cols(I);
    bf16* gu = f8 ? nullptr : a.take<bf16>(gu_elems * count);
    bf16* dn = f8 ? nullptr : a.take<bf16>(d_elems * count);
    uint8_t* gu8 = f8 ? a.take<uint8_t>(gu_elems * count) : nullptr;
    uint8_t* dn8 = f8 ? a.take<uint8_t>(d_elems * count) : nullptr;
    float* gu8_s = f8 ? a.take<float>(gu_sc * count) : nullptr;
    float* dn8_s = f8 ? a.take<float>(d_sc * count) : nullptr;
    for (int e = lo; e < lo + count; ++e) {
      const Mlp<uint16_t>& m = src.experts[e];
      AFD_REQUIRE(m.gate.out == I && m.up.out == I && m.down.in == I && m.gate.in == h && m.down.out == h,
                  "GpuFfn: layer ", l, " expert ", e, " has a shape unlike expert 0's");
      require_no_bias(m.gate, l);
      require_no_bias(m.up, l);
      require_no_bias(m.down, l);
      const size_t i = e - lo;
      if (f8) {
        put_expert_fp8(m, l, e, c.fp8_block_rows, upload ? gu8 + i * gu_elems : nullptr,
                       upload ? gu8_s + i * gu_sc : nullptr, upload ? dn8 + i * d_elems : nullptr,
                       upload ? dn8_s + i * d_sc : nullptr, upload);
        continue;
      }
      AFD_REQUIRE(!m.gate.is_fp8() && !m.up.is_fp8() && !m.down.is_fp8(), "GpuFfn: layer ", l, " expert ", e,
                  " is fp8 but expert 0 is not");
      put_gate_up(gu ? gu + i * gu_elems : nullptr, m.gate, m.up, l, upload);
      put(dn ? dn + i * d_elems : nullptr, m.down.w.data(), m.down.w.size(), upload);
    }
    if (f8) {
      L.use_fp8_experts(gu8, gu8_s, dn8, dn8_s);
    } else {
      L.experts_gate_up = gu;
      L.experts_down = dn;
    }
    L.expert_width = I;
    L.expert_lo = lo;
    L.expert_count = count;
    if (src.has_shared && home) {
      place_mlp(src.shared, l, a, upload, &L.shared_gate_up, &L.shared_down);
      L.shared_width = src.shared.gate.out;
    }
  }
  if (!home) return;
  bf16* fn = a.take<bf16>(w_->final_norm.size());
  bf16* lm = a.take<bf16>(w_->lm_head.w.size());
  put(fn, w_->final_norm.data(), w_->final_norm.size(), upload);
  put(lm, w_->lm_head.w.data(), w_->lm_head.w.size(), upload);
  final_norm_ = fn;
  lm_head_ = lm;
}

void prepare_device(int device) {
  // The FFN driver thread waits on the GPU at every layer: let it sleep rather than spin on a core, since the CPU
  // is the side afd is short of. Harmless if a context with other flags already exists (then it keeps those).
  if (device >= 0 && device < device_count() && cudaSetDevice(device) == cudaSuccess &&
      cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync) != cudaSuccess)
    (void)cudaGetLastError();
}

void require_fits(const ModelConfig& c, int device, size_t weights, size_t workspace, int max_tokens) {
  const DeviceInfo info = device_info(device);  // selects the device
  const size_t need = weights + workspace, margin = size_t{64} << 20;
  if (need + margin > info.free_bytes) {
    std::ostringstream os;
    os << "GpuFfn: " << c.source << " needs " << need << " bytes on GPU " << device << " (" << weights
       << " of weights + " << workspace << " of workspace for " << max_tokens
       << " tokens per call, plus a " << margin << "-byte margin) but only " << info.free_bytes
       << " bytes are free";
    fail(os.str());
  }
}

GpuFfn::GpuFfn(std::shared_ptr<const Bf16Weights> w, int device, int max_tokens)
    : GpuFfn(std::move(w), GpuFfnOptions{{device}, max_tokens}) {}

std::pair<int, int> GpuFfn::expert_slice(int g) const {
  const int E = w_->cfg.n_routed_experts, G = gpus(), first = opt_.first_gpu_experts;
  if (G == 1 || first <= 0) {
    const int lo = static_cast<int>(static_cast<int64_t>(E) * g / G);
    return {lo, static_cast<int>(static_cast<int64_t>(E) * (g + 1) / G) - lo};
  }
  if (g == 0) return {0, first};
  const int rest = E - first, lo = first + static_cast<int>(static_cast<int64_t>(rest) * (g - 1) / (G - 1));
  return {lo, first + static_cast<int>(static_cast<int64_t>(rest) * g / (G - 1)) - lo};
}

GpuFfn::GpuFfn(std::shared_ptr<const Bf16Weights> w, const GpuFfnOptions& opt)
    : w_(std::move(w)), opt_(opt), device_(opt.devices.empty() ? -1 : opt.devices[0]), max_tokens_(opt.max_tokens) {
  AFD_REQUIRE(w_ && (w_->parts & kWeightsFfn) && (w_->parts & kWeightsHead),
              "GpuFfn needs the FFN and head parts of the weights");
  AFD_REQUIRE(max_tokens_ > 0, "GpuFfn: max tokens per call must be > 0, not ", max_tokens_);
  AFD_REQUIRE(!opt.devices.empty(), "GpuFfn: no GPU was given");
  const ModelConfig& c = w_->cfg;
  AFD_REQUIRE(c.hidden_size % 8 == 0 && c.vocab_size % 8 == 0, "GpuFfn: hidden size ", c.hidden_size,
              " and vocabulary ", c.vocab_size, " must be multiples of 8");
  AFD_REQUIRE(gpus() == 1 || gpus() <= std::max(c.n_routed_experts, 1), "GpuFfn: ", gpus(),
              " GPUs for ", c.n_routed_experts, " routed experts: each GPU needs at least one");
  AFD_REQUIRE(gpus() == 1 || opt.first_gpu_experts <= 0 ||
                  c.n_routed_experts - opt.first_gpu_experts >= gpus() - 1,
              "GpuFfn: ", opt.first_gpu_experts, " experts on the first GPU leave too few for the other ",
              gpus() - 1, " of ", c.n_routed_experts);
  for (size_t i = 0; i < opt.devices.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      AFD_REQUIRE(opt.devices[i] != opt.devices[j], "GpuFfn: GPU ", opt.devices[i], " is listed twice");
  const auto [lo, count] = expert_slice(0);
  prepare_device(device_);
  device_info(device_);  // selects the device; throws for a bad index

  DeviceArena plan_w, plan_ws;
  place_weights(plan_w, false, lo, count, true, layers_);
  carve_workspace(c, max_tokens_, plan_ws);
  const size_t T = max_tokens_, V = c.vocab_size, h = c.hidden_size;
  plan_ws.take_bytes(T * V * (sizeof(bf16) + sizeof(float)) + T * (sizeof(cuda::RowSampling) + 4) + 4096);
  if (gpus() > 1) plan_ws.take_bytes(2 * T * h * sizeof(float) + 512);
  require_fits(c, device_, plan_w.used(), plan_ws.used(), max_tokens_);
  weights_ = std::make_unique<DeviceArena>(plan_w.used());
  place_weights(*weights_, true, lo, count, true, layers_);
  arena_ = std::make_unique<DeviceArena>(plan_ws.used());
  ws_ = carve_workspace(c, max_tokens_, *arena_);
  head_logits_ = arena_->take<bf16>(T * V);
  head_f32_ = arena_->take<float>(T * V);
  row_params_ = arena_->take<cuda::RowSampling>(T);
  out_ids_ = arena_->take<int32_t>(T);
  AFD_CUDA_CHECK(cudaMallocHost(&pinned_params_, T * sizeof(cuda::RowSampling)));
  AFD_CUDA_CHECK(cudaMallocHost(&pinned_ids_, T * sizeof(int32_t)));
  AFD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  for (auto& e : xfer_ev_) AFD_CUDA_CHECK(cudaEventCreate(&e));
  for (auto& e : busy_ev_) AFD_CUDA_CHECK(cudaEventCreate(&e));
  AFD_CUBLAS_CHECK(cublasCreate(&blas_));
  AFD_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  AFD_CUBLAS_CHECK(cublasSetWorkspace(blas_, ws_.cublas_ws, ws_.cublas_ws_bytes));
  if (gpus() > 1) {
    partial_ = arena_->take<float>(T * h);
    reduced_ = arena_->take<float>(T * h);
    init_peers();
  }
  poison_workspace();
}

GpuFfn::~GpuFfn() {
  release_peers();
  release_stream(device_, stream_, blas_, xfer_ev_, 4);  // leaves device_ current
  for (auto& e : busy_ev_)
    if (e) cudaEventDestroy(e);
  if (pinned_params_) cudaFreeHost(pinned_params_);
  if (pinned_ids_) cudaFreeHost(pinned_ids_);
}

std::string GpuFfn::name() const { return "gpu:" + std::to_string(device_); }

void* GpuFfn::alloc_host(size_t bytes) {
  void* p = nullptr;
  AFD_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
}

void GpuFfn::free_host(void* p) {
  if (p) AFD_CUDA_CHECK(cudaFreeHost(p));
}

void GpuFfn::ffn_half(int layer, uint16_t* x, int n) {
  const ModelConfig& c = w_->cfg;
  AFD_REQUIRE(layer >= 0 && layer < c.num_layers, "GpuFfn: layer ", layer, " out of range [0, ", c.num_layers, ")");
  AFD_REQUIRE(n >= 0 && n <= max_tokens_, "GpuFfn: ", n, " tokens exceed the ", max_tokens_, " it was sized for");
  if (n == 0) return;
  if (gpus() > 1 && layers_[layer].moe) {
    ffn_half_ep(layer, x, n);
    last_moe_n_ = n;
    return;
  }
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaEventRecord(busy_ev_[0], stream_));
  const size_t bytes = static_cast<size_t>(n) * c.hidden_size * sizeof(bf16);
  AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[0], stream_));
  AFD_CUDA_CHECK(cudaMemcpyAsync(ws_.x, x, bytes, cudaMemcpyHostToDevice, stream_));
  AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[1], stream_));
  run_ffn_layer(c, layers_[layer], ws_, blas_, ws_.x, n, stream_);
  AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[2], stream_));
  AFD_CUDA_CHECK(cudaEventRecord(busy_ev_[1], stream_));
  AFD_CUDA_CHECK(cudaMemcpyAsync(x, ws_.x, bytes, cudaMemcpyDeviceToHost, stream_));
  AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[3], stream_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  float in_ms = 0, out_ms = 0;
  AFD_CUDA_CHECK(cudaEventElapsedTime(&in_ms, xfer_ev_[0], xfer_ev_[1]));
  AFD_CUDA_CHECK(cudaEventElapsedTime(&out_ms, xfer_ev_[2], xfer_ev_[3]));
  last_xfer_s_ = (in_ms + out_ms) / 1e3;
  float busy_ms = 0;
  AFD_CUDA_CHECK(cudaEventElapsedTime(&busy_ms, busy_ev_[0], busy_ev_[1]));
  last_busy_s_.assign(gpus(), 0.0);  // under expert parallelism a dense layer runs on the first GPU alone
  last_busy_s_[0] = busy_ms / 1e3;
  if (layers_[layer].moe) last_moe_n_ = n;
}

GpuFfn::Routing GpuFfn::last_routing() const {
  const ModelConfig& c = w_->cfg;
  Routing r;
  r.n = last_moe_n_;
  const size_t E = c.n_routed_experts, k = c.top_k, n = r.n;
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  r.logits.resize(n * E);
  if (c.arch == Arch::kDeepSeekV3 || c.arch == Arch::kDeepSeekV2) {
    AFD_CUDA_CHECK(cudaMemcpy(r.logits.data(), ws_.logits, n * E * 4, cudaMemcpyDeviceToHost));
  } else {
    std::vector<uint16_t> b(n * E);
    AFD_CUDA_CHECK(cudaMemcpy(b.data(), ws_.logits_bf16, n * E * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < b.size(); ++i) r.logits[i] = bf16_to_f32(b[i]);
  }
  r.ids.resize(n * k);
  r.weights.resize(n * k);
  AFD_CUDA_CHECK(cudaMemcpy(r.ids.data(), ws_.ids, n * k * 4, cudaMemcpyDeviceToHost));
  AFD_CUDA_CHECK(cudaMemcpy(r.weights.data(), ws_.weights, n * k * 4, cudaMemcpyDeviceToHost));
  r.rows_per_expert = rows_per_expert();
  return r;
}

}  // namespace afd::gpu
