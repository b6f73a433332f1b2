#include "transport/ffn_batcher.h"

#include <algorithm>
#include <cstring>

namespace afd::transport {

int FfnBatcher::add_client() {
  std::lock_guard<std::mutex> l(mu_);
  const int id = next_client_++;
  last_done_[id] = Clock::time_point{};  // not busy until its first request
  return id;
}

void FfnBatcher::remove_client(int client) {
  std::lock_guard<std::mutex> l(mu_);
  last_done_.erase(client);
  cv_.notify_all();  // a leader waiting for this connection stops waiting
}

BatchStats FfnBatcher::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

bool FfnBatcher::same_work(const Job& a, const Job& b) const {
  return a.kind == b.kind && (a.kind != MsgType::kFfnHalf || a.layer == b.layer);
}

bool FfnBatcher::awaiting_others() const {
  const auto now = Clock::now();
  for (const auto& [client, t] : last_done_) {
    if (now - t > kBusyFor) continue;  // idle: nothing is expected from it soon
    const bool has =
        std::any_of(pending_.begin(), pending_.end(), [c = client](const Job* j) { return j->client == c; });
    if (!has) return true;
  }
  return false;
}

std::vector<FfnBatcher::Job*> FfnBatcher::take_batch() {
  std::vector<Job*> batch{pending_.front()};
  pending_.pop_front();
  if (opt_.window.count() <= 0) return batch;
  int rows = batch[0]->n;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (same_work(**it, *batch[0]) && rows + (*it)->n <= opt_.max_rows) {
      rows += (*it)->n;
      batch.push_back(*it);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

void FfnBatcher::execute(const std::vector<Job*>& batch) {
  const Job& h = *batch[0];
  try {
    if (batch.size() == 1) {  // alone: straight on the request's buffers
      if (h.kind == MsgType::kFfnHalf) ffn_.ffn_half(h.layer, h.x, h.n);
      else if (h.kind == MsgType::kLogits) ffn_.logits(h.x, h.n, h.logits);
      else ffn_.sample(h.x, h.n, h.params, h.steps, h.ids);
      return;
    }
    const size_t hidden = ffn_.config().hidden_size, vocab = ffn_.config().vocab_size;
    int total = 0;
    for (const Job* j : batch) total += j->n;
    cat_x_.resize(total * hidden);
    size_t at = 0;
    for (const Job* j : batch) {
      std::memcpy(cat_x_.data() + at * hidden, j->x, j->n * hidden * sizeof(uint16_t));
      at += j->n;
    }
    if (h.kind == MsgType::kFfnHalf) {
      ffn_.ffn_half(h.layer, cat_x_.data(), total);
      at = 0;
      for (Job* j : batch) {
        std::memcpy(j->x, cat_x_.data() + at * hidden, j->n * hidden * sizeof(uint16_t));
        at += j->n;
      }
    } else if (h.kind == MsgType::kLogits) {
      cat_logits_.resize(total * vocab);
      ffn_.logits(cat_x_.data(), total, cat_logits_.data());
      at = 0;
      for (Job* j : batch) {
        std::memcpy(j->logits, cat_logits_.data() + at * vocab, j->n * vocab * sizeof(float));
        at += j->n;
      }
    } else {
      cat_params_.clear();
      cat_steps_.clear();
      for (const Job* j : batch) {
        cat_params_.insert(cat_params_.end(), j->params, j->params + j->n);
        cat_steps_.insert(cat_steps_.end(), j->steps, j->steps + j->n);
      }
      cat_ids_.resize(total);
      ffn_.sample(cat_x_.data(), total, cat_params_.data(), cat_steps_.data(), cat_ids_.data());
      at = 0;
      for (Job* j : batch) {
        std::copy_n(cat_ids_.data() + at, j->n, j->ids);
        at += j->n;
      }
    }
  } catch (...) {
    for (Job* j : batch) j->error = std::current_exception();
  }
}

void FfnBatcher::run(Job& job) {
  std::unique_lock<std::mutex> l(mu_);
  pending_.push_back(&job);
  cv_.notify_all();  // a leader in its gather window sees the newcomer
  while (!job.done) {
    if (executing_) {
      cv_.wait(l);
      continue;
    }
    executing_ = true;  // this thread leads: it gathers, calls the backend for the oldest work, and wakes the rest
    if (opt_.window.count() > 0) {
      const auto until = Clock::now() + opt_.window;
      while (awaiting_others())
        if (cv_.wait_until(l, until) == std::cv_status::timeout) break;
    }
    const std::vector<Job*> batch = take_batch();
    l.unlock();
    execute(batch);
    l.lock();
    const auto now = Clock::now();
    for (Job* j : batch) {
      j->done = true;
      stats_.rows += j->n;
      if (auto it = last_done_.find(j->client); it != last_done_.end()) it->second = now;
    }
    stats_.requests += static_cast<int64_t>(batch.size());
    stats_.calls += 1;
    stats_.batched_calls += batch.size() > 1;
    executing_ = false;
    cv_.notify_all();
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace afd::transport
