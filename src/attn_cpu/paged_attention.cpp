#include "attn_cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kMaxChunks = 64;  // KV chunks of one (seq, kv head, tile); merge() keeps one weight per chunk

void prefetch_bytes(const uint8_t* p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 1);
}

int round_up16(int x) { return (x + 15) / 16 * 16; }

// The widest value row a kRows item can pack: its own V section, or (MLA, V inside K) the K rows.
int v_width(const KvLayout& l) { return std::max(l.k_dim, l.v_dim); }
}

PagedAttention::PagedAttention(const PagedKvCache& cache, const cpu::AttnKernels& kernels, int workers, int min_chunk,
                               int items_per_worker)
    : cache_(cache), kernels_(&kernels), min_chunk_(std::max(1, min_chunk)),
      items_per_worker_(std::max(1, items_per_worker)) {
  const KvLayout& l = cache.layout();
  AFD_CHECK(l.block_size <= cpu::kMaxBlockRows && l.k_dim <= cpu::kMaxRowWidth);
  scratch_.resize(std::max(1, workers));
  for (Scratch& s : scratch_) {
    s.q.resize(static_cast<size_t>(kMaxRows) * l.k_dim);
    s.qt.resize(static_cast<size_t>(cpu::qt_pair_rows(l.k_dim)) * cpu::qt_cols(kMaxQPackedRows));
    const size_t score_elems = static_cast<size_t>(kMaxRows) * std::max(l.block_size, kSpan);
    s.s.resize(score_elems);
    s.p.resize(score_elems);
    if (l.row_layout == KvRowLayout::kRows) s.vp.resize(static_cast<size_t>(kSpan / 2) * round_up16(v_width(l)));
    if (l.dtype != KvDtype::kBf16) s.kv.resize(static_cast<size_t>(kSpan) * (l.k_dim + l.v_dim));
  }
}

void PagedAttention::plan(const AttnCoreParams& p, int workers) {
  const int bs = cache_.block_size(), G = p.heads_per_kv, KV = cache_.layout().kv_heads;
  items_.clear();
  groups_.clear();
  // Work before splitting the KV range: one item per (seq, kv head, tile). Split each sequence's range into
  // enough chunks that the call has about items_per_worker_ items per worker, but no chunk shorter than min_chunk_.
  int64_t base = 0;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int rows = (p.token_start[s + 1] - p.token_start[s]) * G;
    base += static_cast<int64_t>(KV) * ((rows + kMaxRows - 1) / kMaxRows);
  }
  const int64_t want = static_cast<int64_t>(items_per_worker_) * workers;
  const int64_t split = std::clamp<int64_t>((want + base - 1) / std::max<int64_t>(base, 1), 1, kMaxChunks);
  int64_t offset = 0;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int n = p.token_start[s + 1] - p.token_start[s];
    if (n == 0) continue;
    const int total = p.cached_len[s] + n;
    const int64_t max_chunks = std::clamp<int64_t>(total / std::max(min_chunk_, bs), 1, kMaxChunks);
    const int64_t chunks = std::min(split, max_chunks);
    int chunk = static_cast<int>((total + chunks - 1) / chunks);
    chunk = (chunk + bs - 1) / bs * bs;  // whole blocks
    const int rows_all = n * G;
    for (int kvh = 0; kvh < KV; ++kvh) {
      for (int row0 = 0; row0 < rows_all; row0 += kMaxRows) {
        const int rows = std::min(kMaxRows, rows_all - row0);
        // Positions this tile can see: [lo, hi).
        const int first_pos = p.cached_len[s] + row0 / G, last_pos = p.cached_len[s] + (row0 + rows - 1) / G;
        const int hi = last_pos + 1;
        const int lo = p.sliding_window > 0 ? std::max(0, first_pos - p.sliding_window + 1) : 0;
        Group g{static_cast<int>(items_.size()), 0};
        for (int b = lo / chunk * chunk; b < hi; b += chunk) {
          Item it{s, kvh, row0, rows, std::max(b, lo), std::min(b + chunk, hi), offset};
          offset += static_cast<int64_t>(rows) * (2 + p.v_dim);
          items_.push_back(it);
          ++g.num_items;
        }
        groups_.push_back(g);
      }
    }
  }
  if (static_cast<int64_t>(partial_.size()) < offset) partial_.resize(offset);
}

void PagedAttention::run_item(const AttnCoreParams& p, const Item& it, Scratch& sc) {
  const KvLayout& lay = cache_.layout();
  const int bs = lay.block_size, G = p.heads_per_kv, H = lay.kv_heads * G;
  const int tok0 = p.token_start[it.seq], cached = p.cached_len[it.seq];
  const int32_t* table = cache_.block_table(p.seq_slot[it.seq]);
  float* m = partial_.data() + it.partial;
  float* l = m + it.rows;
  float* acc = l + it.rows;
  // Gather the tile's query rows: row r is token (row0 + r) / G, head kv_head * G + (row0 + r) % G.
  int hi[kMaxRows], lo[kMaxRows];
  for (int r = 0; r < it.rows; ++r) {
    const int i = (it.row0 + r) / G, h = it.kv_head * G + (it.row0 + r) % G;
    std::copy_n(p.q + (static_cast<int64_t>(tok0 + i) * H + h) * p.qk_dim, p.qk_dim, sc.q.data() + static_cast<int64_t>(r) * p.qk_dim);
    hi[r] = cached + i + 1;
    lo[r] = p.sliding_window > 0 ? cached + i - p.sliding_window + 1 : 0;
    m[r] = kNegInf;
    l[r] = 0.0f;
  }
  std::fill_n(acc, static_cast<int64_t>(it.rows) * p.v_dim, 0.0f);
  if (lay.row_layout == KvRowLayout::kRows) {
    // See kMaxQPackedRows: with few rows Q^T is packed once here and serves every block.
    if (it.rows <= kMaxQPackedRows) cpu::pack_qt_pairs(sc.q.data(), p.qk_dim, it.rows, p.qk_dim, sc.qt.data());
    return run_spans(p, it, sc, lo, hi, m, l, acc);
  }
  // kPairs, block by block: whole blocks from the block start; the positions before kv_begin in the first block
  // are below every row's lo (kv_begin is a chunk start or the tile's lo), so the softmax masks them.
  const bool fp8 = lay.dtype != KvDtype::kBf16;
  const int eb = lay.elem_bytes();
  for (int t0 = it.kv_begin / bs * bs; t0 < it.kv_end;) {
    const int block = table[t0 / bs], off = t0 % bs;
    const int nt = std::min(bs - off, it.kv_end - t0);
    // This block's K and V sections as bf16: the cache's own (bf16), or (fp8) the whole sections converted into
    // this worker's scratch.
    const uint16_t* ksec = nullptr;
    const uint16_t* vsec = nullptr;
    if (!fp8) {
      ksec = cache_.k_rows(block, p.layer, it.kv_head);
      vsec = cache_.v_rows(block, p.layer, it.kv_head);
    } else {
      uint16_t* kc = sc.kv.data();
      uint16_t* vc = kc + static_cast<int64_t>(bs) * lay.k_dim;
      fp8_rows(p.layer, it.kv_head, block, 0, bs, kc, vc);
      ksec = kc;
      vsec = vc;
    }
    // Decode is a stream over the cache: the next block is fetched while this one computes (the hardware
    // prefetcher stops at each 4 KiB page, and a block is a few pages). The kernels spread the prefetch of the
    // next block's K / V section over their loops (a whole block issued at once stalls the core until its
    // line-fill buffers drain). Hints are in the cache's bytes (fp8: half of bf16's).
    const int tn = t0 + nt, nn = std::min(bs, it.kv_end - tn);  // the next block: positions [tn, tn + nn)
    const int32_t next = tn < it.kv_end ? table[tn / bs] : -1;
    cpu::QkPackedParams qp{sc.q.data(), ksec, sc.s.data(), p.qk_dim, bs, bs, it.rows, nt, p.qk_dim};
    if (next >= 0) {
      qp.prefetch = cache_.k_bytes(next, p.layer, it.kv_head);
      qp.prefetch_bytes = static_cast<int64_t>(bs) * lay.k_dim * eb;
    }
    kernels_->qk_kpacked(qp);
    softmax_step(p, sc, it.rows, t0, nt, bs, lo, hi, m, l, acc);
    cpu::PvPackedParams vq{sc.p.data(), vsec, acc, bs, lay.v_dim, p.v_dim, it.rows, nt, p.v_dim};
    if (next >= 0) {
      vq.prefetch = cache_.v_bytes(next, p.layer, it.kv_head);
      vq.prefetch_bytes = static_cast<int64_t>(nn + 1) / 2 * 2 * lay.v_dim * eb;  // the pair rows of nn positions
    }
    kernels_->pv_vpacked(vq);
    t0 += nt;
  }
}

void PagedAttention::fp8_rows(int layer, int kv_head, int32_t block, int r0, int nr, uint16_t* k, uint16_t* v) const {
  const KvLayout& lay = cache_.layout();
  kernels_->fp8_to_bf16(cache_.k_bytes(block, layer, kv_head) + static_cast<int64_t>(r0) * lay.k_dim, k,
                        static_cast<int64_t>(nr) * lay.k_dim);
  if (lay.v_dim > 0)
    kernels_->fp8_to_bf16(cache_.v_bytes(block, layer, kv_head) + static_cast<int64_t>(r0) * lay.v_dim, v,
                          static_cast<int64_t>(nr) * lay.v_dim);
}

PagedAttention::NextRows PagedAttention::next_rows(const AttnCoreParams& p, const Item& it, const int32_t* table,
                                                   int tn) const {
  const KvLayout& lay = cache_.layout();
  if (tn >= it.kv_end) return {};
  const int bs = lay.block_size, nn = std::min(bs, it.kv_end - tn);
  const int64_t elems = p.v_in_k ? static_cast<int64_t>(nn) * lay.k_dim
                                 : static_cast<int64_t>(bs) * lay.k_dim + static_cast<int64_t>(nn) * lay.v_dim;
  return {cache_.k_bytes(table[tn / bs], p.layer, it.kv_head), elems * lay.elem_bytes()};
}

void PagedAttention::softmax_step(const AttnCoreParams& p, Scratch& sc, int rows, int t0, int nt, int stride,
                                  const int* lo, const int* hi, float* m, float* l, float* acc) const {
  // Online softmax over positions [t0, t0 + nt) (MODEL_SPEC 1: fp32 scores and softmax, bf16 P); the visible range
  // of row r in block coordinates is [lo[r] - t0, hi[r] - t0). Accumulators of rows whose max moved are rescaled.
  int blo[kMaxRows], bhi[kMaxRows];
  float alpha[kMaxRows];
  for (int r = 0; r < rows; ++r) {
    blo[r] = lo[r] - t0;
    bhi[r] = hi[r] - t0;
  }
  kernels_->softmax({sc.s.data(), sc.p.data(), blo, bhi, m, l, alpha, stride, stride, rows, nt, p.scale});
  for (int r = 0; r < rows; ++r) {
    if (alpha[r] == 1.0f) continue;
    float* a = acc + static_cast<int64_t>(r) * p.v_dim;
    for (int c = 0; c < p.v_dim; ++c) a[c] *= alpha[r];
  }
}

void PagedAttention::run_spans(const AttnCoreParams& p, const Item& it, Scratch& sc, const int* lo, const int* hi,
                               float* m, float* l, float* acc) {
  const KvLayout& lay = cache_.layout();
  const int bs = lay.block_size, c16 = round_up16(p.v_dim);
  const bool fp8 = lay.dtype != KvDtype::kBf16;
  const int32_t* table = cache_.block_table(p.seq_slot[it.seq]);
  const int qt_stride = cpu::qt_cols(it.rows);
  for (int t0 = it.kv_begin; t0 < it.kv_end;) {
    // Gather the span [t0, t0 + span): whole pieces of consecutive blocks, each starting at an even offset of the
    // span so that its value rows pack into whole pair rows (an odd piece ends the span).
    int span = 0;
    while (t0 + span < it.kv_end && span < kSpan && span % 2 == 0) {
      const int pos = t0 + span, block = table[pos / bs], off = pos % bs;
      const int nt = std::min({bs - off, it.kv_end - pos, kSpan - span});
      const uint16_t* k = nullptr;
      const uint16_t* v = nullptr;
      if (!fp8) {
        k = cache_.k_rows(block, p.layer, it.kv_head) + static_cast<int64_t>(off) * lay.k_dim;
        if (!p.v_in_k) v = cache_.v_rows(block, p.layer, it.kv_head) + static_cast<int64_t>(off) * lay.v_dim;
      } else {  // the piece's rows converted into this worker's scratch, at their span rows
        uint16_t* kc = sc.kv.data() + static_cast<int64_t>(span) * lay.k_dim;
        uint16_t* vc = sc.kv.data() + static_cast<int64_t>(kSpan) * lay.k_dim + static_cast<int64_t>(span) * lay.v_dim;
        fp8_rows(p.layer, it.kv_head, block, off, nt, kc, vc);
        k = kc;
        v = vc;
      }
      if (p.v_in_k) v = k;
      // Decode is a stream over the cache: the next block's rows (the K section, then a GQA V section's rows) are
      // fetched while this piece computes (the hardware prefetcher stops at each 4 KiB page, and a block is a few
      // pages), handed to qk_qpacked as its hint (the AMX and AVX-512 kernels spread it) or, with more rows, all
      // issued here.
      const NextRows ahead = next_rows(p, it, table, pos + nt);
      if (it.rows <= kMaxQPackedRows) {
        kernels_->qk_qpacked({sc.q.data(), sc.qt.data(), k, sc.s.data() + span, p.qk_dim, qt_stride, lay.k_dim,
                              kSpan, it.rows, nt, p.qk_dim, ahead.bytes, ahead.count});
      } else {
        prefetch_bytes(ahead.bytes, ahead.count);
        kernels_->qk({sc.q.data(), k, sc.s.data() + span, p.qk_dim, lay.k_dim, kSpan, it.rows, nt, p.qk_dim});
      }
      kernels_->pack_v(v, p.v_in_k ? lay.k_dim : lay.v_dim, nt, p.v_dim, sc.vp.data() + static_cast<int64_t>(span / 2) * c16,
                       c16);
      span += nt;
    }
    // One online-softmax step and one P.V over the whole span.
    softmax_step(p, sc, it.rows, t0, span, kSpan, lo, hi, m, l, acc);
    kernels_->pv_vpacked({sc.p.data(), reinterpret_cast<const uint16_t*>(sc.vp.data()), acc, kSpan, c16, p.v_dim,
                          it.rows, span, p.v_dim});
    t0 += span;
  }
}

void PagedAttention::merge(const AttnCoreParams& p, const Group& g) {
  const Item& first = items_[g.first_item];
  const int G = p.heads_per_kv, H = cache_.layout().kv_heads * G;
  const int tok0 = p.token_start[first.seq];
  for (int r = 0; r < first.rows; ++r) {
    float mx = kNegInf;
    for (int j = 0; j < g.num_items; ++j) mx = std::max(mx, partial_[items_[g.first_item + j].partial + r]);
    float wsum = 0.0f;
    float w[kMaxChunks];  // chunk weights e^(m_j - M)
    AFD_CHECK(g.num_items <= kMaxChunks, "too many KV chunks: ", g.num_items);
    for (int j = 0; j < g.num_items; ++j) {
      const Item& it = items_[g.first_item + j];
      const float mj = partial_[it.partial + r];
      w[j] = mj == kNegInf ? 0.0f : std::exp(mj - mx);
      wsum += w[j] * partial_[it.partial + it.rows + r];
    }
    const int i = (first.row0 + r) / G, h = first.kv_head * G + (first.row0 + r) % G;
    uint16_t* o = p.o + (static_cast<int64_t>(tok0 + i) * H + h) * p.v_dim;
    const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;
    for (int c = 0; c < p.v_dim; ++c) {
      float v = 0.0f;
      for (int j = 0; j < g.num_items; ++j) {
        const Item& it = items_[g.first_item + j];
        if (w[j] != 0.0f) v += w[j] * partial_[it.partial + 2 * it.rows + static_cast<int64_t>(r) * p.v_dim + c];
      }
      o[c] = f32_to_bf16(v * inv);
    }
  }
}

void PagedAttention::run(const AttnCoreParams& p, ThreadPool& pool) {
  AFD_CHECK(pool.size() <= static_cast<int>(scratch_.size()));
  AFD_CHECK(p.qk_dim == cache_.layout().k_dim);
  AFD_CHECK(!p.v_in_k || cache_.layout().row_layout == KvRowLayout::kRows);  // kPairs has its own V section
  plan(p, pool.size());
  pool.parallel_for(static_cast<int>(items_.size()), [&](int i, int w) { run_item(p, items_[i], scratch_[w]); });
  pool.parallel_for(static_cast<int>(groups_.size()), [&](int g, int) { merge(p, groups_[g]); });
}

}  // namespace afd::attn
