// GpuFfn over several GPUs of one host (expert parallelism). Every GPU holds the router and a contiguous slice of
// the routed experts; the first also holds the shared experts, the dense layers and the LM head. A MoE layer:
//   1. the activations reach every GPU (EpInput: one host copy each, or one copy + NCCL broadcast);
//   2. every GPU routes all n tokens (same router weights, same kernels: the same decisions everywhere), runs its
//      own experts' GEMMs on the rows routed to them and forms its fp32 partial sum of weighted expert outputs;
//      the first GPU also runs the shared experts;
//   3. the partials are summed (EpOutput: NCCL reduce onto the first GPU, or copies back and a host sum) and the
//      residual combine runs once.
// Results equal the one-GPU path up to the fp32 summation order of the k expert outputs (which GPU's partial adds
// first), i.e. a rare 1-ulp bf16 difference. Dense layers run on the first GPU alone.
#include <nccl.h>

#include <cstdlib>
#include <string>

#include "moe_gpu/blas_check.h"
#include "moe_gpu/device.h"
#include "moe_gpu/gpu_ffn.h"
#include "moe_gpu/gpu_ffn_peer.h"
#include "util/numeric.h"

namespace afd::gpu {

namespace {

void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(r));
}

ncclComm_t comm(const std::vector<void*>& comms, int g) { return static_cast<ncclComm_t>(comms[g]); }

}  // namespace

EpInput parse_ep_input(const std::string& s) {
  if (s == "copies") return EpInput::kCopies;
  if (s == "broadcast") return EpInput::kBroadcast;
  fail("expert-parallel input '" + s + "' is not one of: copies, broadcast");
}

EpOutput parse_ep_output(const std::string& s) {
  if (s == "reduce") return EpOutput::kNcclReduce;
  if (s == "host-sum") return EpOutput::kHostSum;
  fail("expert-parallel output '" + s + "' is not one of: reduce, host-sum");
}

void GpuFfn::init_peers() {
  const ModelConfig& c = w_->cfg;
  const size_t T = max_tokens_, h = c.hidden_size;
  for (int g = 1; g < gpus(); ++g) {
    auto p = std::make_unique<Peer>();
    p->device = opt_.devices[g];
    prepare_device(p->device);
    const auto [lo, count] = expert_slice(g);
    DeviceArena plan_w, plan_ws;
    place_weights(plan_w, false, lo, count, false, p->layers);
    carve_workspace(c, max_tokens_, plan_ws);
    plan_ws.take_bytes(T * h * sizeof(float) + 256);
    require_fits(c, p->device, plan_w.used(), plan_ws.used(), max_tokens_);  // also selects the device
    p->weights = std::make_unique<DeviceArena>(plan_w.used());
    place_weights(*p->weights, true, lo, count, false, p->layers);
    p->arena = std::make_unique<DeviceArena>(plan_ws.used());
    p->ws = carve_workspace(c, max_tokens_, *p->arena);
    p->partial = p->arena->take<float>(T * h);
    AFD_CUDA_CHECK(cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking));
    for (auto& e : p->busy) AFD_CUDA_CHECK(cudaEventCreate(&e));
    AFD_CUBLAS_CHECK(cublasCreate(&p->blas));
    AFD_CUBLAS_CHECK(cublasSetStream(p->blas, p->stream));
    AFD_CUBLAS_CHECK(cublasSetWorkspace(p->blas, p->ws.cublas_ws, p->ws.cublas_ws_bytes));
    if (opt_.output == EpOutput::kHostSum) AFD_CUDA_CHECK(cudaMallocHost(&p->host_partial, T * h * sizeof(float)));
    peers_.push_back(std::move(p));
  }
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  if (opt_.output == EpOutput::kHostSum) {
    AFD_CUDA_CHECK(cudaMallocHost(&host_partial_, T * h * sizeof(float)));
    AFD_CUDA_CHECK(cudaMallocHost(&host_extra_, T * h * sizeof(uint16_t)));
  }
  if (opt_.input == EpInput::kBroadcast || opt_.output == EpOutput::kNcclReduce) {
    setenv("NCCL_NVLS_ENABLE", "0", 0);  // NVLink multicast stays off unless the user decided otherwise
    std::vector<ncclComm_t> comms(gpus());
    nccl_check(ncclCommInitAll(comms.data(), gpus(), opt_.devices.data()), "communicator setup over the FFN GPUs");
    comms_.assign(comms.begin(), comms.end());
  }
}

void GpuFfn::release_peers() {
  for (void* cm : comms_)
    if (cm) ncclCommDestroy(static_cast<ncclComm_t>(cm));
  comms_.clear();
  peers_.clear();
  if (host_partial_) cudaFreeHost(host_partial_);
  if (host_extra_) cudaFreeHost(host_extra_);
  host_partial_ = nullptr;
  host_extra_ = nullptr;
}

int64_t GpuFfn::device_memory_bytes() const {
  size_t b = weight_bytes() + workspace_bytes();
  for (const auto& p : peers_) b += p->weights->capacity() + p->arena->capacity();
  return static_cast<int64_t>(b);
}

void GpuFfn::poison_workspace() {
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaMemsetAsync(arena_->base(), 0xff, arena_->capacity(), stream_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (const auto& p : peers_) {
    AFD_CUDA_CHECK(cudaSetDevice(p->device));
    AFD_CUDA_CHECK(cudaMemsetAsync(p->arena->base(), 0xff, p->arena->capacity(), p->stream));
    AFD_CUDA_CHECK(cudaStreamSynchronize(p->stream));
  }
  AFD_CUDA_CHECK(cudaSetDevice(device_));
}

std::vector<int32_t> GpuFfn::rows_per_expert() const {
  const int E = w_->cfg.n_routed_experts;
  std::vector<int32_t> rows(E, 0);
  auto read = [&](int g, const int32_t* group_offset) {
    const auto [lo, count] = expert_slice(g);
    std::vector<int32_t> off(count + 1);
    AFD_CUDA_CHECK(cudaMemcpy(off.data(), group_offset, (count + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost));
    for (int e = 0; e < count; ++e) rows[lo + e] = off[e + 1] - off[e];
  };
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  read(0, ws_.group_offset);
  for (size_t i = 0; i < peers_.size(); ++i) {
    AFD_CUDA_CHECK(cudaSetDevice(peers_[i]->device));
    AFD_CUDA_CHECK(cudaStreamSynchronize(peers_[i]->stream));
    read(static_cast<int>(i) + 1, peers_[i]->ws.group_offset);
  }
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  return rows;
}

void GpuFfn::ffn_half_ep(int layer, uint16_t* x, int n) {
  const ModelConfig& c = w_->cfg;
  const size_t count = static_cast<size_t>(n) * c.hidden_size, bytes = count * sizeof(bf16);
  const int G = gpus();
  // 1. In.
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[0], stream_));
  AFD_CUDA_CHECK(cudaMemcpyAsync(ws_.x, x, bytes, cudaMemcpyHostToDevice, stream_));
  AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[1], stream_));
  if (opt_.input == EpInput::kCopies) {
    for (const auto& p : peers_) {
      AFD_CUDA_CHECK(cudaSetDevice(p->device));
      AFD_CUDA_CHECK(cudaMemcpyAsync(p->ws.x, x, bytes, cudaMemcpyHostToDevice, p->stream));
    }
  } else {
    nccl_check(ncclGroupStart(), "group start");
    nccl_check(ncclBroadcast(ws_.x, ws_.x, count, ncclBfloat16, 0, comm(comms_, 0), stream_), "broadcast");
    for (int g = 1; g < G; ++g) {
      Peer& p = *peers_[g - 1];
      nccl_check(ncclBroadcast(p.ws.x, p.ws.x, count, ncclBfloat16, 0, comm(comms_, g), p.stream), "broadcast");
    }
    nccl_check(ncclGroupEnd(), "broadcast of the activations");
  }
  // 2. Every GPU's experts (launches are asynchronous: the GPUs run concurrently).
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaEventRecord(busy_ev_[0], stream_));
  run_ffn_partial(c, layers_[layer], ws_, blas_, ws_.x, n, stream_, partial_, true);
  AFD_CUDA_CHECK(cudaEventRecord(busy_ev_[1], stream_));
  for (const auto& p : peers_) {
    AFD_CUDA_CHECK(cudaSetDevice(p->device));
    AFD_CUDA_CHECK(cudaEventRecord(p->busy[0], p->stream));
    run_ffn_partial(c, p->layers[layer], p->ws, p->blas, p->ws.x, n, p->stream, p->partial, false);
    AFD_CUDA_CHECK(cudaEventRecord(p->busy[1], p->stream));
  }
  // 3. Out.
  const FfnLayerDev& L = layers_[layer];
  if (opt_.output == EpOutput::kNcclReduce) {
    nccl_check(ncclGroupStart(), "group start");
    nccl_check(ncclReduce(partial_, reduced_, count, ncclFloat, ncclSum, 0, comm(comms_, 0), stream_), "reduce");
    for (int g = 1; g < G; ++g) {
      Peer& p = *peers_[g - 1];
      nccl_check(ncclReduce(p.partial, p.partial, count, ncclFloat, ncclSum, 0, comm(comms_, g), p.stream), "reduce");
    }
    nccl_check(ncclGroupEnd(), "reduce of the partial sums");
    AFD_CUDA_CHECK(cudaSetDevice(device_));
    finish_ffn_partial(c, L, ws_, ws_.x, n, reduced_, stream_);
    AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[2], stream_));
    AFD_CUDA_CHECK(cudaMemcpyAsync(x, ws_.x, bytes, cudaMemcpyDeviceToHost, stream_));
    AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[3], stream_));
    AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the reduce waited for every peer's partial
  } else {
    AFD_CUDA_CHECK(cudaSetDevice(device_));
    AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[2], stream_));
    AFD_CUDA_CHECK(cudaMemcpyAsync(host_partial_, partial_, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    if (L.shared_gate_up)
      AFD_CUDA_CHECK(cudaMemcpyAsync(host_extra_, ws_.extra, bytes, cudaMemcpyDeviceToHost, stream_));
    AFD_CUDA_CHECK(cudaEventRecord(xfer_ev_[3], stream_));
    for (const auto& p : peers_) {
      AFD_CUDA_CHECK(cudaSetDevice(p->device));
      AFD_CUDA_CHECK(cudaMemcpyAsync(p->host_partial, p->partial, count * sizeof(float), cudaMemcpyDeviceToHost,
                                     p->stream));
    }
    for (const auto& p : peers_) {
      AFD_CUDA_CHECK(cudaSetDevice(p->device));
      AFD_CUDA_CHECK(cudaStreamSynchronize(p->stream));
    }
    AFD_CUDA_CHECK(cudaSetDevice(device_));
    AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    // The same rounding points as the combine kernel: bf16(sum), bf16(+ shared), bf16(x + ffn).
    const bool shared = L.shared_gate_up != nullptr;
    for (size_t i = 0; i < count; ++i) {
      float s = host_partial_[i];
      for (const auto& p : peers_) s += p->host_partial[i];
      float f = bf16_to_f32(f32_to_bf16(s));
      if (shared) f = bf16_to_f32(f32_to_bf16(f + bf16_to_f32(host_extra_[i])));
      x[i] = f32_to_bf16(bf16_to_f32(x[i]) + f);
    }
  }
  float in_ms = 0, out_ms = 0, busy_ms = 0;
  AFD_CUDA_CHECK(cudaEventElapsedTime(&in_ms, xfer_ev_[0], xfer_ev_[1]));
  AFD_CUDA_CHECK(cudaEventElapsedTime(&out_ms, xfer_ev_[2], xfer_ev_[3]));
  last_xfer_s_ = (in_ms + out_ms) / 1e3;
  last_busy_s_.assign(G, 0.0);
  AFD_CUDA_CHECK(cudaEventElapsedTime(&busy_ms, busy_ev_[0], busy_ev_[1]));
  last_busy_s_[0] = busy_ms / 1e3;
  for (int g = 1; g < G; ++g) {
    Peer& p = *peers_[g - 1];
    AFD_CUDA_CHECK(cudaSetDevice(p.device));
    AFD_CUDA_CHECK(cudaEventSynchronize(p.busy[1]));
    AFD_CUDA_CHECK(cudaEventElapsedTime(&busy_ms, p.busy[0], p.busy[1]));
    last_busy_s_[g] = busy_ms / 1e3;
  }
  AFD_CUDA_CHECK(cudaSetDevice(device_));
}

}  // namespace afd::gpu
