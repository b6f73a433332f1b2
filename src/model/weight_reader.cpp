#include "model/weight_reader.h"

#include <cstring>
#include <type_traits>

#include "util/error.h"
#include "util/numeric.h"

namespace afd {

using st::DType;

WeightReader::WeightReader(const st::Checkpoint& ckpt, const ModelConfig& cfg, Progress* progress)
    : ckpt_(ckpt), cfg_(cfg), progress_(progress) {}

const st::TensorInfo& WeightReader::tensor(const std::string& name, const std::vector<int64_t>& shape) const {
  const st::TensorInfo& t = ckpt_.get(name);
  AFD_REQUIRE(t.shape == shape, *t.file, ": tensor ", name, " has shape ", st::shape_str(t.shape), " but ",
              cfg_.source, " implies ", st::shape_str(shape));
  return t;
}

template <typename T>
std::vector<T> WeightReader::read(const std::string& name, const std::vector<int64_t>& shape) {
  const st::TensorInfo& t = tensor(name, shape);
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t cols = shape.empty() ? 1 : shape.back();
  AFD_CHECK(shape.size() <= 2, "read() takes 1-D or 2-D tensors: ", name);
  std::vector<T> out(static_cast<size_t>(rows * cols));
  convert(t, -1, rows, cols, out.data());
  return out;
}

template <typename T>
std::vector<T> WeightReader::read_slab(const std::string& name, int64_t index, int64_t count, int64_t rows,
                                       int64_t cols) {
  const st::TensorInfo& t = tensor(name, {count, rows, cols});
  std::vector<T> out(static_cast<size_t>(rows * cols));
  convert(t, index, rows, cols, out.data());
  return out;
}

namespace {
// The element conversions: float keeps every value exactly; bf16 rounds to nearest even.
inline void store(float v, float* out) { *out = v; }
inline void store(float v, uint16_t* out) { *out = f32_to_bf16(v); }
// Element i of an fp8 block-scale tensor (F32 or BF16, checked by fp8_scales()).
inline float scale_at(const st::TensorInfo& s, int64_t i) {
  return s.dtype == DType::F32 ? reinterpret_cast<const float*>(s.data)[i]
                               : bf16_to_f32(reinterpret_cast<const uint16_t*>(s.data)[i]);
}
}  // namespace

template <typename T>
void WeightReader::convert(const st::TensorInfo& t, int64_t slab, int64_t rows, int64_t cols, T* out) {
  const int64_t n = rows * cols;
  const int64_t first = slab < 0 ? 0 : slab * n;  // element offset of this slab
  const size_t esz = st::dtype_size(t.dtype);
  const uint8_t* src = t.data + static_cast<size_t>(first) * esz;
  switch (t.dtype) {
    case DType::F32: {
      const auto* p = reinterpret_cast<const float*>(src);
      for (int64_t i = 0; i < n; ++i) store(p[i], out + i);
      break;
    }
    case DType::BF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(src);
      if constexpr (std::is_same_v<T, uint16_t>)
        std::memcpy(out, p, static_cast<size_t>(n) * 2);
      else
        for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      break;
    }
    case DType::F16: {
      const auto* p = reinterpret_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) store(f16_to_f32(p[i]), out + i);
      break;
    }
    case DType::F8_E4M3: {
      const st::TensorInfo* s = &fp8_scales(t, slab, rows, cols);
      const int64_t br = cfg_.fp8_block_rows, bc = cfg_.fp8_block_cols;
      const int64_t srows = (rows + br - 1) / br, scols = (cols + bc - 1) / bc;
      const int64_t sfirst = slab < 0 ? 0 : slab * srows * scols;
      // W[i][j] = fp32(q[i][j]) * S[i / br][j / bc], then stored (rounded to bf16 for bf16 buffers).
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
          store(fp8_e4m3_to_f32(src[i * cols + j]) * scale_at(*s, sfirst + (i / br) * scols + j / bc),
                out + i * cols + j);
      if (progress_) progress_->add(static_cast<uint64_t>(srows * scols) * st::dtype_size(s->dtype));
      break;
    }
    default:
      fail(*t.file, ": tensor ", t.name, " has dtype ", st::dtype_name(t.dtype),
           ", which is not a weight dtype (BF16, F16, F32, F8_E4M3)");
  }
  if (progress_) progress_->add(static_cast<uint64_t>(n) * esz);
}

const st::TensorInfo& WeightReader::fp8_scales(const st::TensorInfo& t, int64_t slab, int64_t rows,
                                               int64_t cols) const {
  AFD_REQUIRE(cfg_.fp8, *t.file, ": tensor ", t.name, " is F8_E4M3 but ", cfg_.source,
              " has no fp8 quantization_config");
  const std::string sname = t.name + "_scale_inv";
  const st::TensorInfo* s = ckpt_.find(sname);
  AFD_REQUIRE(s != nullptr, *t.file, ": tensor ", t.name, " is F8_E4M3 but its block scales ", sname,
              " are missing");
  const int64_t br = cfg_.fp8_block_rows, bc = cfg_.fp8_block_cols;
  const int64_t srows = (rows + br - 1) / br, scols = (cols + bc - 1) / bc;
  const std::vector<int64_t> want = slab < 0 ? std::vector<int64_t>{srows, scols}
                                             : std::vector<int64_t>{t.shape[0], srows, scols};
  AFD_REQUIRE(s->shape == want, *s->file, ": tensor ", sname, " has shape ", st::shape_str(s->shape), " but ",
              st::shape_str(t.shape), " in ", br, "x", bc, " blocks needs ", st::shape_str(want));
  AFD_REQUIRE(s->dtype == DType::F32 || s->dtype == DType::BF16, *s->file, ": tensor ", sname, " has dtype ",
              st::dtype_name(s->dtype), " (block scales must be F32 or BF16)");
  return *s;
}

bool WeightReader::read_fp8(const std::string& name, int64_t rows, int64_t cols, std::vector<uint8_t>& q,
                            std::vector<float>& scales) {
  const st::TensorInfo& t = tensor(name, {rows, cols});
  if (t.dtype != DType::F8_E4M3) return false;
  const st::TensorInfo& s = fp8_scales(t, -1, rows, cols);
  q.assign(t.data, t.data + rows * cols);
  const int64_t ns = s.shape[0] * s.shape[1];
  scales.resize(static_cast<size_t>(ns));
  for (int64_t i = 0; i < ns; ++i) scales[i] = scale_at(s, i);
  if (progress_) progress_->add(static_cast<uint64_t>(rows * cols + s.nbytes));
  return true;
}

template std::vector<float> WeightReader::read<float>(const std::string&, const std::vector<int64_t>&);
template std::vector<uint16_t> WeightReader::read<uint16_t>(const std::string&, const std::vector<int64_t>&);
template std::vector<float> WeightReader::read_slab<float>(const std::string&, int64_t, int64_t, int64_t, int64_t);
template std::vector<uint16_t> WeightReader::read_slab<uint16_t>(const std::string&, int64_t, int64_t, int64_t,
                                                                 int64_t);

}  // namespace afd
