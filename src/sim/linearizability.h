// A linearizability checker for key-value histories (Wing & Gong's search with Lowe's
// memoization, the algorithm behind Knossos and Porcupine), written for the simulator and for
// histories recorded against a live cluster.
//
// A history is a list of completed or indeterminate operations on single keys. Each key is an
// independent register (a value or absent), so the history is split by key and each part is
// checked alone (linearizability is compositional). An operation takes effect atomically at
// some instant between its call and its return:
//  - call < other.ret is required for `other` to be ordered after it; operations whose
//    intervals touch (ret == call) are treated as concurrent, never as ordered;
//  - an indeterminate operation (the client never learned the outcome: timeout, crash) has no
//    return: it may take effect at any instant after its call, or never;
//  - an operation the client knows failed without effect must be left out of the history.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace balsa::sim {

struct KvOp {
  enum class Kind : uint8_t { kPut, kGet, kDelete, kCas };
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

  Kind kind = Kind::kGet;
  int client = 0;
  std::string key;
  std::string value;                   // kPut, kCas: the value written
  std::optional<std::string> expect;   // kCas: the value compared against (nullopt = absent)
  uint64_t call = 0;                   // invocation time
  uint64_t ret = kNever;               // response time; kNever = indeterminate
  // Outputs, meaningful when ret != kNever.
  std::optional<std::string> got;      // kGet: the value read (nullopt = absent)
  bool cas_ok = false;                 // kCas: whether the compare held

  bool indeterminate() const { return ret == kNever; }
};

std::string to_string(const KvOp& op);

struct LinearizabilityResult {
  bool ok = true;
  bool exhausted = false;  // the search hit its step budget: no verdict (counts as a failure)
  std::string key;         // the first key whose history is not linearizable
  std::string explanation; // the offending key's history, one op per line
  uint64_t keys = 0;
  uint64_t ops = 0;
  uint64_t steps = 0;      // search steps over all keys
};

// `initial` is every key's state before the history (absent). `max_steps` bounds the search per
// key; exceeding it yields ok = false, exhausted = true.
LinearizabilityResult check_linearizable(const std::vector<KvOp>& history, uint64_t max_steps = 20'000'000);

}  // namespace balsa::sim
