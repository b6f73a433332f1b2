// safetensors files: memory-mapped, header validated before any tensor is touched.
//
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e]}, ...,
// "__metadata__": {...}}, then the data section; offsets are relative to the data section's start.
// Invariant after construction: every TensorInfo's bytes lie inside the mapping, match dtype x shape exactly, and
// no two tensors overlap. Violations are reported naming the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace afd::st {

enum class DType { BF16, F16, F32, F64, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType d);
const char* dtype_name(DType d);
bool parse_dtype(const std::string& s, DType* out);
std::string shape_str(const std::vector<int64_t>& shape);

// A read-only memory mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // points into the owning file's mapping
  size_t nbytes;
  const std::string* file;  // the path of the file that holds it (for messages)
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return map_.path(); }
  const TensorInfo* find(const std::string& name) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile map_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: `model.safetensors`, or shards listed by `model.safetensors.index.json`
// (a directory holding exactly one other *.safetensors file is also accepted).
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);
  const std::string& dir() const { return dir_; }
  const TensorInfo* find(const std::string& name) const;
  // Throws an error naming the checkpoint and the tensor when it is absent.
  const TensorInfo& get(const std::string& name) const;
  size_t num_files() const { return files_.size(); }
  // Every tensor of every shard, in file order.
  std::vector<const TensorInfo*> all() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorInfo*> index_;
};

// Writing (logit dumps, tests that build files). Tensors are written in the order given.
struct TensorWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void write_file(const std::string& path, const std::vector<TensorWrite>& tensors,
                const std::map<std::string, std::string>& metadata = {});

}  // namespace afd::st
