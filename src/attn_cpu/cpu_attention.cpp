#include "attn_cpu/cpu_attention.h"

#include "cpu/dnnl_linear.h"

#include <sched.h>

#include <algorithm>
#include <thread>

#include "attn_cpu/kv_fill.h"
#include "attn_cpu/norm_rope.h"
#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

namespace {

constexpr float kLatentEps = 1e-6f;  // q_a / kv_a layernorms: the constructor default, not rms_norm_eps (2.3)

template <typename V>
void grow(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

// Appends the rows of `l` ([out, in]) to `rows` (the stacked [N, in] matrix of a fused projection).
void stack_rows(const Linear<uint16_t>& l, const char* what, std::vector<uint16_t>& rows) {
  AFD_REQUIRE(l.b.empty(), "attention projection ", what, " has a bias; the CPU attention worker supports none");
  rows.insert(rows.end(), l.w.begin(), l.w.end());
}

// [n][k] -> [k][n]
std::vector<uint16_t> transpose(const uint16_t* a, int n, int k) {
  std::vector<uint16_t> t(static_cast<size_t>(n) * k);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < k; ++j) t[static_cast<size_t>(j) * n + i] = a[static_cast<size_t>(i) * k + j];
  return t;
}

}  // namespace

struct CpuAttention::Layer {
  std::vector<uint16_t> input_norm, q_a_norm, kv_a_norm, q_norm, k_norm;
  std::unique_ptr<Matmul> in_proj;  // GQA: [q | k | v]; MLA: [q_a | kv_a] or [q | kv_a]
  std::unique_ptr<Matmul> q_b;      // MLA with q_lora_rank
  std::unique_ptr<Matmul> uk;       // MLA: batch H, [qk_nope] -> [kv_lora]   (W_UK absorbed into q)
  std::unique_ptr<Matmul> uv;       // MLA: batch H, [kv_lora] -> [v_head]    (W_UV applied to latent outputs)
  std::unique_ptr<Matmul> o_proj;   // [H * v_dim] -> [hidden]
};

CpuAttention::CpuAttention(std::shared_ptr<const Bf16Weights> w, const CpuAttnOptions& opt)
    : w_(std::move(w)), opt_(opt), eng_(dnnl::engine::kind::cpu, 0), stream_(eng_) {
  AFD_REQUIRE(w_->parts & kWeightsAttn, "the CPU attention worker needs the attention weights of ", w_->dir);
  const ModelConfig& c = w_->cfg;
  const int h = c.hidden_size, H = c.num_heads;
  rope_ = make_rope_table(c.rope, c.rope_dim);
  AFD_REQUIRE(opt.onednn_bf16 != 1 || cpu::dnnl_has_bf16_matmul(), "oneDNN has no bf16 matmul on this CPU (ISA ",
              cpu::dnnl_isa_name(), ")");
  bf16_ = opt.onednn_bf16 == -1 ? projection_bf16_default() : opt.onednn_bf16 == 1;
  AFD_REQUIRE(opt.block_size > 0 && opt.block_size <= cpu::kMaxBlockRows, "KV block size must be in 1..",
              cpu::kMaxBlockRows, " (got ", opt.block_size, ")");

  KvLayout lay;
  lay.layers = c.num_layers;
  lay.block_size = opt.block_size;
  lay.dtype = opt.kv_dtype;
  if (c.is_mla()) {
    lay.kv_heads = 1;
    lay.k_dim = c.kv_lora_rank + c.qk_rope_dim;
    lay.v_dim = 0;
  } else {
    AFD_REQUIRE(c.num_kv_heads > 0 && H % c.num_kv_heads == 0, c.source, ": num_attention_heads (", H,
                ") must be a multiple of num_key_value_heads (", c.num_kv_heads, ")");
    lay.kv_heads = c.num_kv_heads;
    lay.k_dim = lay.v_dim = c.head_dim;
  }
  AFD_REQUIRE(opt.kv_pairs != 1 || lay.pairs_possible(), "the paired KV layout (kv_pairs = 1) needs separate V rows, "
              "an even head dim and a KV block size that is a multiple of 16 (", c.source, ": ",
              c.is_mla() ? "MLA" : "GQA", ", block size ", lay.block_size, ")");
  if (opt.kv_pairs == 1 || (opt.kv_pairs == -1 && lay.pairs_possible())) lay.row_layout = KvRowLayout::kPairs;
  AFD_REQUIRE(lay.k_dim <= cpu::kMaxRowWidth, "attention rows of ", lay.k_dim, " values are wider than the CPU kernels' ",
              cpu::kMaxRowWidth);

  for (int l = 0; l < c.num_layers; ++l) {
    const AttnLayer<uint16_t>& A = w_->attn[l];
    auto L = std::make_unique<Layer>();
    L->input_norm = A.input_norm;
    std::vector<uint16_t> rows;
    if (c.is_mla()) {
      const int lora = c.kv_lora_rank, nope = c.qk_nope_dim, vd = c.v_head_dim;
      stack_rows(c.q_lora_rank > 0 ? A.q_a : A.q_proj, "q", rows);
      stack_rows(A.kv_a, "kv_a_proj_with_mqa", rows);
      const int n1 = static_cast<int>(rows.size() / h);
      L->in_proj = std::make_unique<Matmul>(eng_, mm_cache_, 1, h, n1, transpose(rows.data(), n1, h).data(), bf16_);
      if (c.q_lora_rank > 0) {
        AFD_REQUIRE(A.q_b.b.empty(), "q_b_proj has a bias; unsupported");
        L->q_b = std::make_unique<Matmul>(eng_, mm_cache_, 1, c.q_lora_rank, A.q_b.out,
                                          transpose(A.q_b.w.data(), A.q_b.out, c.q_lora_rank).data(), bf16_);
        L->q_a_norm = A.q_a_norm;
      }
      L->kv_a_norm = A.kv_a_norm;
      // kv_b_proj [H * (nope + vd), lora]: head h has W_UK = rows [h(nope+vd), +nope) and W_UV = the next vd rows.
      std::vector<uint16_t> uk(static_cast<size_t>(H) * nope * lora), uv(static_cast<size_t>(H) * lora * vd);
      for (int hh = 0; hh < H; ++hh) {
        const uint16_t* base = A.kv_b.w.data() + static_cast<size_t>(hh) * (nope + vd) * lora;
        std::copy_n(base, static_cast<size_t>(nope) * lora, uk.data() + static_cast<size_t>(hh) * nope * lora);  // [nope][lora]
        const auto t = transpose(base + static_cast<size_t>(nope) * lora, vd, lora);                             // [lora][vd]
        std::copy(t.begin(), t.end(), uv.data() + static_cast<size_t>(hh) * lora * vd);
      }
      L->uk = std::make_unique<Matmul>(eng_, mm_cache_, H, nope, lora, uk.data(), bf16_);
      L->uv = std::make_unique<Matmul>(eng_, mm_cache_, H, lora, vd, uv.data(), bf16_);
    } else {
      stack_rows(A.q_proj, "q_proj", rows);
      stack_rows(A.k_proj, "k_proj", rows);
      stack_rows(A.v_proj, "v_proj", rows);
      const int n1 = static_cast<int>(rows.size() / h);
      L->in_proj = std::make_unique<Matmul>(eng_, mm_cache_, 1, h, n1, transpose(rows.data(), n1, h).data(), bf16_);
      L->q_norm = A.q_norm;
      L->k_norm = A.k_norm;
    }
    AFD_REQUIRE(A.o_proj.b.empty(), "o_proj has a bias; unsupported");
    L->o_proj = std::make_unique<Matmul>(eng_, mm_cache_, 1, A.o_proj.in, h, transpose(A.o_proj.w.data(), h, A.o_proj.in).data(), bf16_);
    layers_.push_back(std::move(L));
  }

  const int64_t blocks = opt.pool_blocks > 0 ? opt.pool_blocks : opt.pool_bytes / lay.block_bytes();
  AFD_REQUIRE(blocks > 0, "a KV pool of ", opt.pool_bytes, " bytes holds no block of ", lay.block_bytes(), " bytes");
  cache_ = std::make_unique<PagedKvCache>(lay, blocks, opt.max_seqs);
  pool_ = std::make_unique<ThreadPool>(opt.threads > 0 ? opt.threads : allowed_cpus(), opt.pin_threads);
  const cpu::Isa isa = opt.isa >= 0 ? static_cast<cpu::Isa>(opt.isa) : cpu::best_isa();
  const cpu::AttnKernels* k = cpu::kernels_for(isa);
  AFD_REQUIRE(k, "this CPU cannot run the ", cpu::isa_name(isa), " attention kernels");
  core_ = std::make_unique<PagedAttention>(*cache_, *k, pool_->size(), opt.min_chunk, opt.items_per_worker);
}

CpuAttention::~CpuAttention() = default;

std::string CpuAttention::name() const {
  return std::string("cpu-attention(") + cpu::isa_name(kernel_isa()) + ", " + std::to_string(pool_->size()) +
         " threads)";
}

std::string CpuAttention::onednn_info() const {
  const Layer& L = *layers_.front();
  std::string s = "isa=" + cpu::dnnl_isa_name() + (bf16_ ? " weights=bf16" : " weights=f32") +
                  " in_proj=" + L.in_proj->impl() + " o_proj=" + L.o_proj->impl();
  if (L.uk) s += " uk=" + L.uk->impl() + " uv=" + L.uv->impl();
  return s;
}

void CpuAttention::embed(const int32_t* ids, int n, uint16_t* x) {
  const ModelConfig& c = config();
  AFD_REQUIRE(w_->parts & kWeightsEmbed, "embed() needs the embedding weights of ", w_->dir);
  for (int i = 0; i < n; ++i) {
    AFD_REQUIRE(ids[i] >= 0 && ids[i] < c.vocab_size, "token id ", ids[i], " is outside the vocabulary (",
                c.vocab_size, " ids)");
    std::copy_n(w_->embed.data() + static_cast<size_t>(ids[i]) * c.hidden_size, c.hidden_size,
                x + static_cast<size_t>(i) * c.hidden_size);
  }
}

void CpuAttention::fill_synthetic(int slot, int len, uint64_t seed) {
  // The gains a real row carries: MLA latents are kv_a_layernorm outputs; GQA keys are k_norm outputs (qk_norm).
  const ModelConfig& c = config();
  KvFillGains g;
  if (c.is_mla() || c.qk_norm) {
    g.k_gain_len = c.is_mla() ? c.kv_lora_rank : c.head_dim;
    for (const auto& L : layers_) g.k_gain.push_back(c.is_mla() ? L->kv_a_norm.data() : L->k_norm.data());
  }
  fill_kv_synthetic(*cache_, *pool_, slot, len, seed, g);
}

template <typename F>
void CpuAttention::for_each_token(const AttnBatch& b, F&& f) {
  pool_->parallel_for(b.num_tokens, [&](int t, int) {
    const int s = static_cast<int>(std::upper_bound(b.token_start, b.token_start + b.num_seqs + 1, t) - b.token_start) - 1;
    f(t, s, b.cached_len[s] + (t - b.token_start[s]));
  });
}

void CpuAttention::project_gqa(const Layer& L, int layer, const AttnBatch& b, const uint16_t* xn) {
  const ModelConfig& c = config();
  const int T = b.num_tokens, H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim, bs = cache_->block_size();
  const int n1 = (H + 2 * KV) * hd;
  grow(f1_, static_cast<size_t>(T) * n1);
  L.in_proj->run(stream_, xn, T, f1_.data());
  for_each_token(b, [&](int t, int s, int pos) {
    RopeAngles ang;
    rope_angles(rope_, pos, hd, ang);
    const float* row = f1_.data() + static_cast<size_t>(t) * n1;
    for (int hh = 0; hh < H; ++hh) {
      uint16_t* q = q_.data() + (static_cast<size_t>(t) * H + hh) * hd;
      to_bf16(row + hh * hd, hd, q);
      if (c.qk_norm) rmsnorm_bf16(q, L.q_norm.data(), hd, c.rms_norm_eps, q);
      rope_apply_bf16(c.rope_layout, ang, q, hd);
    }
    // KV append: each head's K and V row is formed here, then written in the cache's row layout.
    const int32_t block = cache_->block_table(b.seq_slot[s])[pos / bs];
    uint16_t k[cpu::kMaxRowWidth], v[cpu::kMaxRowWidth];
    for (int kv = 0; kv < KV; ++kv) {
      to_bf16(row + (H + kv) * hd, hd, k);
      if (c.qk_norm) rmsnorm_bf16(k, L.k_norm.data(), hd, c.rms_norm_eps, k);
      rope_apply_bf16(c.rope_layout, ang, k, hd);
      to_bf16(row + (H + KV + kv) * hd, hd, v);
      cache_->store_k(block, layer, kv, pos % bs, k);
      cache_->store_v(block, layer, kv, pos % bs, v);
    }
  });
}

void CpuAttention::project_mla(const Layer& L, int layer, const AttnBatch& b, const uint16_t* xn) {
  const ModelConfig& c = config();
  const int T = b.num_tokens, H = c.num_heads, bs = cache_->block_size();
  const int lora = c.kv_lora_rank, rd = c.qk_rope_dim, nope = c.qk_nope_dim, qk = c.qk_head_dim();
  const int nq = c.q_lora_rank > 0 ? c.q_lora_rank : H * qk;
  const int n1 = nq + lora + rd, row_w = lora + rd;
  grow(f1_, static_cast<size_t>(T) * n1);
  L.in_proj->run(stream_, xn, T, f1_.data());
  const float* qsrc = f1_.data();
  int qstride = n1;
  if (c.q_lora_rank > 0) {
    grow(qa_, static_cast<size_t>(T) * nq);
    for_each_token(b, [&](int t, int, int) {
      uint16_t* qa = qa_.data() + static_cast<size_t>(t) * nq;
      to_bf16(f1_.data() + static_cast<size_t>(t) * n1, nq, qa);
      rmsnorm_bf16(qa, L.q_a_norm.data(), nq, kLatentEps, qa);
    });
    grow(f2_, static_cast<size_t>(T) * H * qk);
    L.q_b->run(stream_, qa_.data(), T, f2_.data());
    qsrc = f2_.data();
    qstride = H * qk;
  }
  grow(qn_, static_cast<size_t>(H) * T * nope);
  for_each_token(b, [&](int t, int s, int pos) {
    RopeAngles ang;
    rope_angles(rope_, pos, rd, ang);
    // Cache row: [kv_a_layernorm(latent) | rope(k_pe)], both bf16.
    const float* ckv = f1_.data() + static_cast<size_t>(t) * n1 + nq;
    const int32_t block = cache_->block_table(b.seq_slot[s])[pos / bs];
    // MLA caches are kRows: a bf16 one is written in place, an fp8 one through store_k (rounded once, at the end).
    uint16_t tmp[cpu::kMaxRowWidth];
    const bool in_place = cache_->layout().dtype == KvDtype::kBf16;
    uint16_t* row = in_place ? cache_->k_row(block, layer, 0, pos % bs) : tmp;
    to_bf16(ckv, row_w, row);
    rmsnorm_bf16(row, L.kv_a_norm.data(), lora, kLatentEps, row);
    rope_apply_bf16(c.rope_layout, ang, row + lora, rd);
    if (!in_place) cache_->store_k(block, layer, 0, pos % bs, row);
    // q_nope goes to [H][T][nope] for the batched W_UK product; q_pe is rotated into the tail of the q row.
    const float* q = qsrc + static_cast<size_t>(t) * qstride;
    for (int hh = 0; hh < H; ++hh) {
      to_bf16(q + hh * qk, nope, qn_.data() + (static_cast<size_t>(hh) * T + t) * nope);
      uint16_t* qpe = q_.data() + (static_cast<size_t>(t) * H + hh) * row_w + lora;
      to_bf16(q + hh * qk + nope, rd, qpe);
      rope_apply_bf16(c.rope_layout, ang, qpe, rd);
    }
  });
  grow(f3_, static_cast<size_t>(H) * T * lora);
  L.uk->run(stream_, qn_.data(), T, f3_.data());  // [H][T][lora] = q_nope . W_UK
  pool_->parallel_for(T, [&](int t, int) {
    for (int hh = 0; hh < H; ++hh)
      to_bf16(f3_.data() + (static_cast<size_t>(hh) * T + t) * lora, lora, q_.data() + (static_cast<size_t>(t) * H + hh) * row_w);
  });
}

void CpuAttention::attn_half(int layer, const AttnBatch& b, uint16_t* x) {
  const ModelConfig& c = config();
  AFD_REQUIRE(layer >= 0 && layer < c.num_layers, "layer ", layer, " is outside 0..", c.num_layers - 1);
  AFD_REQUIRE(b.num_seqs >= 0 && b.token_start && b.token_start[0] == 0 && b.token_start[b.num_seqs] == b.num_tokens,
              "the micro-batch's token offsets do not add up to its ", b.num_tokens, " tokens");
  for (int s = 0; s < b.num_seqs; ++s) {
    const int n = b.token_start[s + 1] - b.token_start[s];
    AFD_REQUIRE(n >= 0 && b.cached_len[s] >= 0, "sequence ", s, " of the micro-batch has a negative length");
    const int64_t need = static_cast<int64_t>(b.cached_len[s]) + n, have = cache_->capacity(b.seq_slot[s]);
    AFD_REQUIRE(need <= have, "KV cache slot ", b.seq_slot[s], " has room for ", have, " positions but needs ", need,
                "; reserve() it first (the pool has ", cache_->free_blocks(), " of ", cache_->total_blocks(),
                " blocks free)");
  }
  const int T = b.num_tokens;
  if (T == 0) return;
  const Layer& L = *layers_[layer];
  const int h = c.hidden_size, H = c.num_heads;
  const bool mla = c.is_mla();
  const int qk_row = cache_->layout().k_dim;           // q row as the kernels read it
  const int o_row = mla ? c.kv_lora_rank : c.head_dim;  // attention output per head
  grow(xn_, static_cast<size_t>(T) * h);
  grow(q_, static_cast<size_t>(T) * H * qk_row);
  grow(o_, static_cast<size_t>(T) * H * std::max(o_row, c.v_dim()));
  pool_->parallel_for(T, [&](int t, int) {
    rmsnorm_bf16(x + static_cast<size_t>(t) * h, L.input_norm.data(), h, c.rms_norm_eps, xn_.data() + static_cast<size_t>(t) * h);
  });
  if (mla)
    project_mla(L, layer, b, xn_.data());
  else
    project_gqa(L, layer, b, xn_.data());

  AttnCoreParams p;
  p.num_seqs = b.num_seqs;
  p.seq_slot = b.seq_slot;
  p.token_start = b.token_start;
  p.cached_len = b.cached_len;
  p.layer = layer;
  p.heads_per_kv = mla ? H : H / c.num_kv_heads;
  p.qk_dim = qk_row;
  p.v_dim = o_row;
  p.v_in_k = mla;
  p.q = q_.data();
  p.o = o_.data();
  p.scale = c.softmax_scale();
  p.sliding_window = c.sliding_window;
  core_->run(p, *pool_);

  const uint16_t* attn_out = o_.data();  // [T, H * v_dim] bf16, the o_proj input
  if (mla) {
    const int lora = c.kv_lora_rank, vd = c.v_head_dim;
    grow(ob_, static_cast<size_t>(H) * T * std::max(lora, vd));
    pool_->parallel_for(H, [&](int hh, int) {  // [T][H][lora] -> [H][T][lora]
      for (int t = 0; t < T; ++t)
        std::copy_n(o_.data() + (static_cast<size_t>(t) * H + hh) * lora, lora, ob_.data() + (static_cast<size_t>(hh) * T + t) * lora);
    });
    grow(f2_, static_cast<size_t>(H) * T * vd);
    L.uv->run(stream_, ob_.data(), T, f2_.data());  // [H][T][vd] = o_lat . W_UV^T
    pool_->parallel_for(T, [&](int t, int) {         // -> [T][H * vd] bf16
      for (int hh = 0; hh < H; ++hh)
        to_bf16(f2_.data() + (static_cast<size_t>(hh) * T + t) * vd, vd, o_.data() + (static_cast<size_t>(t) * H + hh) * vd);
    });
  }
  grow(f1_, static_cast<size_t>(T) * h);
  L.o_proj->run(stream_, attn_out, T, f1_.data());
  pool_->parallel_for(T, [&](int t, int) {  // residual add in bf16: x = bf16(x + bf16(attn))
    uint16_t* xr = x + static_cast<size_t>(t) * h;
    const float* a = f1_.data() + static_cast<size_t>(t) * h;
    for (int i = 0; i < h; ++i) xr[i] = f32_to_bf16(bf16_to_f32(xr[i]) + round_bf16(a[i]));
  });
}

}  // namespace afd::attn
