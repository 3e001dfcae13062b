// SecretRedactor: keeps one secret (the cluster token) out of a byte stream (a job's log).
//
// A driver gets the cluster token in its environment (it submits work with it); a job that prints
// its environment would otherwise write the token into its log, which `orrery job logs` and the
// jobs API serve. Feed() replaces every occurrence of the secret, including one split across
// chunks: it holds back only a tail that could be the start of the secret (so ordinary output is
// never delayed) and Flush() releases it at the end.
//
// Thread safety: none; one stream owns one redactor.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

namespace orrery::live {

class SecretRedactor {
 public:
  // An empty secret redacts nothing.
  SecretRedactor(std::string secret, std::string replacement)
      : secret_(std::move(secret)), replacement_(std::move(replacement)) {}

  // The bytes of `chunk` (after what was held back) that are safe to emit now.
  // O(chunk + secret^2).
  std::string Feed(std::string_view chunk) {
    buf_.append(chunk);
    if (secret_.empty()) return std::exchange(buf_, std::string());
    for (size_t at = buf_.find(secret_); at != std::string::npos;
         at = buf_.find(secret_, at + replacement_.size())) {
      buf_.replace(at, secret_.size(), replacement_);
    }
    // The longest suffix that is a proper prefix of the secret waits for the next chunk.
    size_t hold = 0;
    for (size_t k = std::min(buf_.size(), secret_.size() - 1); k > 0; --k) {
      if (buf_.compare(buf_.size() - k, k, secret_, 0, k) == 0) {
        hold = k;
        break;
      }
    }
    std::string out = buf_.substr(0, buf_.size() - hold);
    buf_.erase(0, buf_.size() - hold);
    return out;
  }
  // What was held back (the stream ended without the rest of the secret).
  std::string Flush() { return std::exchange(buf_, std::string()); }
  // Bytes fed but not yet emitted (a possible start of the secret).
  size_t held() const { return buf_.size(); }

 private:
  std::string secret_, replacement_, buf_;
};

}  // namespace orrery::live
