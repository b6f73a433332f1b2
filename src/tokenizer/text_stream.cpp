#include "tokenizer/text_stream.h"

#include <algorithm>

namespace afd::tok {

TextStream::TextStream(const tok::Tokenizer& tk, std::vector<std::string> stop)
    : dec_(tk, /*skip_special=*/true), stop_(std::move(stop)) {
  stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

std::string TextStream::release() {
  // A stop string that is not in pending_ can only complete later if it begins in a suffix of pending_ (everything
  // before pending_ was checked when it was emitted), so the earliest match in pending_ is the first in the text.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  size_t hold = 0;  // the longest suffix of pending_ that is a proper prefix of a stop string
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string TextStream::push(int32_t id) {
  if (stopped_) return {};
  pending_ += dec_.push(id);
  return release();
}

std::string TextStream::finish() {
  if (stopped_) return {};
  pending_ += dec_.flush();
  std::string out = release();
  if (stopped_) return out;
  out += pending_;  // no more text can come: a held-back prefix of a stop string is plain text
  pending_.clear();
  return out;
}

}  // namespace afd::tok
