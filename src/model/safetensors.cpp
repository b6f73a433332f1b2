#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace afd::st {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
struct DTypeRow {
  DType d;
  const char* name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::BF16, "BF16", 2}, {DType::F16, "F16", 2},         {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4},         {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},     {DType::U8, "U8", 1},           {DType::BOOL, "BOOL", 1},
};
// Header JSON larger than this is refused rather than parsed (real checkpoints stay far below it).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
}  // namespace

size_t dtype_size(DType d) {
  for (const auto& r : kDTypes)
    if (r.d == d) return r.size;
  return 0;
}

const char* dtype_name(DType d) {
  for (const auto& r : kDTypes)
    if (r.d == d) return r.name;
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  for (const auto& r : kDTypes)
    if (s == r.name) {
      *out = r.d;
      return true;
    }
  return false;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  AFD_REQUIRE(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(path, ": cannot map: ", std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) {
  const size_t size = map_.size();
  AFD_REQUIRE(size >= 8, path, ": truncated safetensors file (", size, " bytes; the header length alone needs 8)");
  uint64_t hlen = 0;
  std::memcpy(&hlen, map_.data(), 8);  // little-endian on every platform afd supports
  AFD_REQUIRE(hlen <= size - 8, path, ": header length ", hlen, " runs past the end of the file (", size,
              " bytes): the file is truncated or not safetensors");
  AFD_REQUIRE(hlen <= kMaxHeaderBytes, path, ": header length ", hlen, " exceeds the ", kMaxHeaderBytes,
              "-byte limit");
  const char* hbeg = reinterpret_cast<const char*>(map_.data() + 8);
  json header;
  try {
    header = json::parse(hbeg, hbeg + hlen);
  } catch (const json::exception& e) {
    fail(path, ": malformed safetensors header JSON (", e.what(), ")");
  }
  AFD_REQUIRE(header.is_object(), path, ": safetensors header is not a JSON object");

  const uint8_t* data = map_.data() + 8 + hlen;
  const uint64_t data_size = size - 8 - hlen;
  tensors_.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      AFD_REQUIRE(entry.is_object(), path, ": __metadata__ is not a JSON object");
      for (const auto& [k, v] : entry.items())
        if (v.is_string()) metadata_[k] = v.get<std::string>();
      continue;
    }
    AFD_REQUIRE(entry.is_object(), path, ": tensor ", name, ": header entry is not a JSON object");
    AFD_REQUIRE(entry.contains("dtype") && entry["dtype"].is_string(), path, ": tensor ", name,
                ": header entry lacks a string 'dtype'");
    AFD_REQUIRE(entry.contains("shape") && entry["shape"].is_array(), path, ": tensor ", name,
                ": header entry lacks an array 'shape'");
    AFD_REQUIRE(entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
                    entry["data_offsets"].size() == 2,
                path, ": tensor ", name, ": header entry lacks 'data_offsets' [begin, end]");
    TensorInfo t;
    t.name = name;
    t.file = &map_.path();
    const std::string dt = entry["dtype"].get<std::string>();
    AFD_REQUIRE(parse_dtype(dt, &t.dtype), path, ": tensor ", name, " has unsupported dtype ", dt);
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      AFD_REQUIRE(d.is_number_unsigned() && d.get<uint64_t>() < (1ull << 40), path, ": tensor ", name,
                  ": shape ", entry["shape"].dump(), " is not a list of non-negative sizes");
      t.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
      AFD_REQUIRE(numel < (1ull << 48), path, ": tensor ", name, ": shape ", entry["shape"].dump(), " is too large");
    }
    const auto& off = entry["data_offsets"];
    AFD_REQUIRE(off[0].is_number_unsigned() && off[1].is_number_unsigned(), path, ": tensor ", name,
                ": data_offsets ", off.dump(), " are not non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    AFD_REQUIRE(b <= e, path, ": tensor ", name, ": data_offsets ", off.dump(), " end before they begin");
    AFD_REQUIRE(e <= data_size, path, ": tensor ", name, ": data_offsets ", off.dump(),
                " lie past the end of the data section (", data_size, " bytes): the file is truncated or corrupt");
    const uint64_t need = numel * dtype_size(t.dtype);
    AFD_REQUIRE(e - b == need, path, ": tensor ", name, ": data_offsets span ", e - b, " bytes but ", dt, " ",
                shape_str(t.shape), " needs ", need);
    t.data = data + b;
    t.nbytes = static_cast<size_t>(need);
    tensors_.push_back(std::move(t));
  }
  // No two tensors may share bytes (a corrupt header could alias them).
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_)
    if (t.nbytes) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    AFD_REQUIRE(by_offset[i - 1]->data + by_offset[i - 1]->nbytes <= by_offset[i]->data, path, ": tensors ",
                by_offset[i - 1]->name, " and ", by_offset[i]->name, " overlap in the data section");
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  AFD_REQUIRE(fs::is_directory(dir), dir, ": checkpoint directory does not exist");
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> shards;
  json weight_map;
  if (fs::exists(index_path)) {
    std::ifstream in(index_path);
    json idx;
    try {
      idx = json::parse(in);
    } catch (const json::exception& e) {
      fail(index_path.string(), ": malformed JSON (", e.what(), ")");
    }
    AFD_REQUIRE(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(), index_path.string(),
                ": has no 'weight_map' object");
    weight_map = idx["weight_map"];
    for (const auto& [name, shard] : weight_map.items()) {
      AFD_REQUIRE(shard.is_string(), index_path.string(), ": weight_map entry for ", name, " is not a file name");
      const std::string s = shard.get<std::string>();
      AFD_REQUIRE(s.find('/') == std::string::npos, index_path.string(), ": shard name ", s,
                  " must be a plain file name");
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    std::sort(shards.begin(), shards.end());
    for (const auto& s : shards)
      AFD_REQUIRE(fs::exists(fs::path(dir) / s), index_path.string(), " names shard ", s,
                  " which is missing from ", dir);
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shards.push_back("model.safetensors");
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") shards.push_back(e.path().filename().string());
    AFD_REQUIRE(shards.size() == 1, dir, ": expected model.safetensors or model.safetensors.index.json (found ",
                shards.size(), " .safetensors files)");
  }
  for (const auto& s : shards) {
    files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / s).string()));
    for (const auto& t : files_.back()->tensors()) {
      auto [it, fresh] = index_.emplace(t.name, &t);
      AFD_REQUIRE(fresh, dir, ": tensor ", t.name, " appears in both ", *it->second->file, " and ", *t.file);
    }
  }
  if (!weight_map.is_null()) {
    for (const auto& [name, shard] : weight_map.items()) {
      auto it = index_.find(name);
      const std::string where = (fs::path(dir) / shard.get<std::string>()).string();
      AFD_REQUIRE(it != index_.end(), where, ": tensor ", name, " listed in model.safetensors.index.json is missing");
      AFD_REQUIRE(*it->second->file == where, "tensor ", name, " is in ", *it->second->file,
                  " but model.safetensors.index.json places it in ", where);
    }
  }
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

std::vector<const TensorInfo*> Checkpoint::all() const {
  std::vector<const TensorInfo*> out;
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) out.push_back(&t);
  return out;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  AFD_REQUIRE(t != nullptr, dir_, ": checkpoint has no tensor ", name);
  return *t;
}

void write_file(const std::string& path, const std::vector<TensorWrite>& tensors,
                const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');  // align the data section to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  AFD_REQUIRE(out.good(), path, ": cannot open for writing");
  const uint64_t hlen = h.size();
  out.write(reinterpret_cast<const char*>(&hlen), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& t : tensors) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(n));
  }
  AFD_REQUIRE(out.good(), path, ": write failed");
}

}  // namespace afd::st
