#include "sim/linearizability.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_set>

namespace balsa::sim {

namespace {

using State = std::optional<std::string>;

std::string show(const State& s) { return s ? fmt::format("\"{}\"", *s) : std::string("<absent>"); }

// Applies `op` to `state`. False if the op's recorded output contradicts the state.
bool step(const KvOp& op, const State& state, State* next) {
  switch (op.kind) {
    case KvOp::Kind::kPut:
      *next = op.value;
      return true;
    case KvOp::Kind::kDelete:
      *next = std::nullopt;
      return true;
    case KvOp::Kind::kGet:
      *next = state;
      return op.indeterminate() || op.got == state;
    case KvOp::Kind::kCas: {
      const bool holds = state == op.expect;
      *next = holds ? State(op.value) : state;
      return op.indeterminate() || holds == op.cas_ok;
    }
  }
  return false;
}

struct Bits {
  std::vector<uint64_t> w;
  explicit Bits(size_t n) : w((n + 63) / 64) {}
  void set(size_t i) { w[i / 64] |= 1ull << (i % 64); }
  void clear(size_t i) { w[i / 64] &= ~(1ull << (i % 64)); }
};

struct CacheKey {
  std::vector<uint64_t> bits;
  State state;
  bool operator==(const CacheKey& o) const { return bits == o.bits && state == o.state; }
};
struct CacheHash {
  size_t operator()(const CacheKey& k) const {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint64_t x : k.bits) h = (h ^ x) * 0x100000001b3ULL;
    if (k.state) h ^= std::hash<std::string>()(*k.state) * 31;
    return static_cast<size_t>(h);
  }
};

// One key's history. Returns false (not linearizable) or sets *exhausted.
bool check_key(const std::vector<const KvOp*>& ops, uint64_t max_steps, uint64_t* steps, bool* exhausted) {
  const size_t n = ops.size();
  // Entries: a call and a return per op, in time order; calls before returns at equal times
  // (touching intervals are concurrent). Node 0 is the list head.
  struct Ev {
    uint64_t time;
    bool is_call;
    size_t op;
  };
  std::vector<Ev> evs;
  evs.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    evs.push_back({ops[i]->call, true, i});
    evs.push_back({ops[i]->ret, false, i});
  }
  std::stable_sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.is_call && !b.is_call;
  });
  struct Node {
    bool is_call = false;
    size_t op = 0;
    size_t match = 0;  // a call's return node
    size_t prev = 0, next = 0;
  };
  const size_t kEnd = 2 * n + 1;
  std::vector<Node> list(2 * n + 1);
  std::vector<size_t> call_node(n), ret_node(n);
  for (size_t k = 0; k < evs.size(); ++k) {
    Node& nd = list[k + 1];
    nd.is_call = evs[k].is_call;
    nd.op = evs[k].op;
    nd.prev = k;
    nd.next = k + 2 <= evs.size() ? k + 2 : kEnd;
    (evs[k].is_call ? call_node : ret_node)[evs[k].op] = k + 1;
  }
  list[0].next = evs.empty() ? kEnd : 1;
  for (size_t i = 0; i < n; ++i) list[call_node[i]].match = ret_node[i];

  auto unlink = [&](size_t x) {
    list[list[x].prev].next = list[x].next;
    if (list[x].next != kEnd) list[list[x].next].prev = list[x].prev;
  };
  auto relink = [&](size_t x) {
    list[list[x].prev].next = x;
    if (list[x].next != kEnd) list[list[x].next].prev = x;
  };

  State state;  // every key starts absent
  Bits linearized(n);
  std::unordered_set<CacheKey, CacheHash> cache;
  struct Frame {
    size_t call;
    State state;
  };
  std::vector<Frame> stack;
  size_t entry = list[0].next;
  while (list[0].next != kEnd) {
    if (++*steps > max_steps) {
      *exhausted = true;
      return false;
    }
    if (entry == kEnd) return false;  // defensive: cannot happen with matched pairs
    const Node& nd = list[entry];
    if (nd.is_call) {
      State next;
      bool accepted = false;
      if (step(*ops[nd.op], state, &next)) {
        Bits b = linearized;
        b.set(nd.op);
        accepted = cache.insert(CacheKey{b.w, next}).second;
      }
      if (accepted) {
        stack.push_back(Frame{entry, state});
        state = std::move(next);
        linearized.set(nd.op);
        // Lift the op out of the list: its call and its return.
        unlink(entry);
        unlink(nd.match);
        entry = list[0].next;
      } else {
        entry = nd.next;
      }
    } else {
      // A return reached with its op not linearized: undo the last choice.
      if (stack.empty()) return false;
      const Frame f = std::move(stack.back());
      stack.pop_back();
      state = f.state;
      linearized.clear(list[f.call].op);
      relink(list[f.call].match);
      relink(f.call);
      entry = list[f.call].next;
    }
  }
  return true;
}

// The history as it looked at time t: ops called by then, those still running turned
// indeterminate (writes) or left out (reads, which observed nothing yet).
std::vector<KvOp> project(const std::vector<const KvOp*>& ops, uint64_t t) {
  std::vector<KvOp> out;
  for (const KvOp* op : ops) {
    if (op->call > t) continue;
    if (op->ret <= t) {
      out.push_back(*op);
    } else if (op->kind != KvOp::Kind::kGet) {
      KvOp pending = *op;
      pending.ret = KvOp::kNever;
      out.push_back(std::move(pending));
    }
  }
  return out;
}

std::string explain_all(const std::vector<const KvOp*>& ops) {
  std::vector<const KvOp*> sorted = ops;
  std::stable_sort(sorted.begin(), sorted.end(), [](const KvOp* a, const KvOp* b) { return a->call < b->call; });
  std::string s;
  for (const KvOp* op : sorted) s += to_string(*op) + "\n";
  return s;
}

// Finds the first response that makes the history non-linearizable (projections only gain
// constraints as time goes on, so a binary search over response times finds it) and shows the
// ops around it: what a human needs to see the anomaly.
std::string explain_first_failure(const std::vector<const KvOp*>& ops, uint64_t max_steps) {
  std::vector<uint64_t> rets;
  for (const KvOp* op : ops)
    if (!op->indeterminate()) rets.push_back(op->ret);
  std::sort(rets.begin(), rets.end());
  rets.erase(std::unique(rets.begin(), rets.end()), rets.end());
  auto fails_at = [&](uint64_t t) {
    std::vector<KvOp> p = project(ops, t);
    std::vector<const KvOp*> ptrs;
    for (const KvOp& op : p) ptrs.push_back(&op);
    uint64_t steps = 0;
    bool exhausted = false;
    return !check_key(ptrs, max_steps, &steps, &exhausted) && !exhausted;
  };
  size_t lo = 0, hi = rets.size();  // first index whose projection fails
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (fails_at(rets[mid]))
      hi = mid;
    else
      lo = mid + 1;
  }
  if (lo == rets.size()) return explain_all(ops);
  const uint64_t t = rets[lo];
  std::vector<KvOp> p = project(ops, t);
  std::stable_sort(p.begin(), p.end(), [](const KvOp& a, const KvOp& b) { return a.call < b.call; });
  const size_t from = p.size() > 24 ? p.size() - 24 : 0;
  std::string s = fmt::format("linearizable until the response at {}; the last {} ops called by then ({} earlier ops omitted; "
                              "pending writes shown as outcome unknown):\n",
                              t, p.size() - from, from);
  for (size_t k = from; k < p.size(); ++k) s += (p[k].ret == t ? "  >> " : "     ") + to_string(p[k]) + "\n";
  return s;
}

}  // namespace

std::string to_string(const KvOp& op) {
  const std::string when =
      op.indeterminate() ? fmt::format("[{}, ?)", op.call) : fmt::format("[{}, {}]", op.call, op.ret);
  switch (op.kind) {
    case KvOp::Kind::kPut:
      return fmt::format("{} c{} put {} = \"{}\"{}", when, op.client, op.key, op.value,
                         op.indeterminate() ? " (outcome unknown)" : "");
    case KvOp::Kind::kDelete:
      return fmt::format("{} c{} delete {}{}", when, op.client, op.key, op.indeterminate() ? " (outcome unknown)" : "");
    case KvOp::Kind::kGet:
      return fmt::format("{} c{} get {} -> {}", when, op.client, op.key, show(op.got));
    case KvOp::Kind::kCas:
      return fmt::format("{} c{} cas {} if {} then \"{}\" -> {}", when, op.client, op.key, show(op.expect), op.value,
                         op.indeterminate() ? "unknown" : op.cas_ok ? "swapped" : "compare failed");
  }
  return "?";
}

LinearizabilityResult check_linearizable(const std::vector<KvOp>& history, uint64_t max_steps) {
  LinearizabilityResult out;
  std::map<std::string, std::vector<const KvOp*>> by_key;  // ordered: deterministic reports
  for (const KvOp& op : history) by_key[op.key].push_back(&op);
  out.keys = by_key.size();
  out.ops = history.size();
  for (auto& [key, ops] : by_key) {
    bool exhausted = false;
    uint64_t steps = 0;
    const bool ok = check_key(ops, max_steps, &steps, &exhausted);
    out.steps += steps;
    if (ok) continue;
    out.ok = false;
    out.exhausted = exhausted;
    out.key = key;
    out.explanation = exhausted ? explain_all(ops) : explain_first_failure(ops, max_steps);
    return out;
  }
  return out;
}

}  // namespace balsa::sim
