// Builds checkpoint variants for tests: copy a fixture, then add, drop, reshape or re-lay-out tensors.
#pragma once

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace afd::test {

struct OwnedTensor {
  std::string name;
  st::DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

inline std::vector<OwnedTensor> read_all(const std::string& dir) {
  st::Checkpoint ck(dir);
  std::vector<OwnedTensor> out;
  for (const auto* t : ck.all()) out.push_back({t->name, t->dtype, t->shape, {t->data, t->data + t->nbytes}});
  return out;
}

inline void write_all(const std::string& path, const std::vector<OwnedTensor>& ts) {
  std::vector<st::TensorWrite> w;
  for (const auto& t : ts) w.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  st::write_file(path, w);
}

// Copies `src` (a fixture checkpoint) to `dst` as one model.safetensors after `edit` changed the tensor list.
inline void rewrite_checkpoint(const std::string& src, const std::string& dst,
                               const std::function<void(std::vector<OwnedTensor>&)>& edit) {
  namespace fs = std::filesystem;
  fs::create_directories(dst);
  fs::copy_file(fs::path(src) / "config.json", fs::path(dst) / "config.json", fs::copy_options::overwrite_existing);
  auto ts = read_all(src);
  edit(ts);
  write_all((fs::path(dst) / "model.safetensors").string(), ts);
}

inline OwnedTensor* find_tensor(std::vector<OwnedTensor>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

inline void drop_tensor(std::vector<OwnedTensor>& ts, const std::string& name) {
  std::erase_if(ts, [&](const OwnedTensor& t) { return t.name == name; });
}

// Replaces per-expert tensors `<p>.experts.E.{g,u,d}.weight<s>` with the fused 3-D layout transformers 5 can
// write: `<q>.experts.gate_up_proj<s>` [E, 2I, H] (gate rows first) and `<q>.experts.down_proj<s>` [E, H, I],
// where <s> is "" for weights and "_scale_inv" for fp8 block scales. Row-major concatenation is byte concatenation.
inline void fuse_experts(std::vector<OwnedTensor>& ts, const std::string& p, const std::string& q, int E,
                         const std::string& g, const std::string& u, const std::string& d) {
  for (const char* suffix : {"", "_scale_inv"}) {
    const std::string w = std::string(".weight") + suffix;
    if (!find_tensor(ts, p + ".experts.0." + g + w)) continue;
    OwnedTensor gu{q + ".experts.gate_up_proj" + suffix, {}, {}, {}};
    OwnedTensor dn{q + ".experts.down_proj" + suffix, {}, {}, {}};
    for (int e = 0; e < E; ++e) {
      const std::string pe = p + ".experts." + std::to_string(e) + ".";
      OwnedTensor *tg = find_tensor(ts, pe + g + w), *tu = find_tensor(ts, pe + u + w), *td = find_tensor(ts, pe + d + w);
      gu.dtype = tg->dtype;
      dn.dtype = td->dtype;
      gu.shape = {E, tg->shape[0] + tu->shape[0], tg->shape[1]};
      dn.shape = {E, td->shape[0], td->shape[1]};
      gu.bytes.insert(gu.bytes.end(), tg->bytes.begin(), tg->bytes.end());
      gu.bytes.insert(gu.bytes.end(), tu->bytes.begin(), tu->bytes.end());
      dn.bytes.insert(dn.bytes.end(), td->bytes.begin(), td->bytes.end());
      for (const auto& n : {pe + g + w, pe + u + w, pe + d + w}) drop_tensor(ts, n);
    }
    ts.push_back(std::move(gu));
    ts.push_back(std::move(dn));
  }
}

}  // namespace afd::test
