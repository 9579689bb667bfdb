#include "sim/linearizability.h"

#include <gtest/gtest.h>

#include "core/rng.h"

namespace balsa::sim {
namespace {

constexpr uint64_t kNever = KvOp::kNever;

KvOp put(int c, std::string k, std::string v, uint64_t call, uint64_t ret) {
  KvOp op;
  op.kind = KvOp::Kind::kPut;
  op.client = c;
  op.key = std::move(k);
  op.value = std::move(v);
  op.call = call;
  op.ret = ret;
  return op;
}
KvOp get(int c, std::string k, std::optional<std::string> got, uint64_t call, uint64_t ret) {
  KvOp op;
  op.kind = KvOp::Kind::kGet;
  op.client = c;
  op.key = std::move(k);
  op.got = std::move(got);
  op.call = call;
  op.ret = ret;
  return op;
}
KvOp cas(int c, std::string k, std::optional<std::string> expect, std::string v, bool ok, uint64_t call,
         uint64_t ret) {
  KvOp op;
  op.kind = KvOp::Kind::kCas;
  op.client = c;
  op.key = std::move(k);
  op.expect = std::move(expect);
  op.value = std::move(v);
  op.cas_ok = ok;
  op.call = call;
  op.ret = ret;
  return op;
}
KvOp del(int c, std::string k, uint64_t call, uint64_t ret) {
  KvOp op;
  op.kind = KvOp::Kind::kDelete;
  op.client = c;
  op.key = std::move(k);
  op.call = call;
  op.ret = ret;
  return op;
}

TEST(Linearizability, SequentialHistoryPasses) {
  const auto r = check_linearizable({put(0, "a", "1", 0, 10), get(1, "a", "1", 20, 30), del(0, "a", 40, 50),
                                     get(1, "a", std::nullopt, 60, 70), cas(0, "a", std::nullopt, "2", true, 80, 90),
                                     get(1, "a", "2", 100, 110)});
  EXPECT_TRUE(r.ok) << r.explanation;
  EXPECT_EQ(r.ops, 6u);
}

TEST(Linearizability, StaleReadAfterCompletedWriteFails) {
  const auto r = check_linearizable({put(0, "a", "1", 0, 10), get(1, "a", std::nullopt, 20, 30)});
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.exhausted);
  EXPECT_EQ(r.key, "a");
  EXPECT_NE(r.explanation.find("get a -> <absent>"), std::string::npos) << r.explanation;
}

TEST(Linearizability, OlderValueAfterNewerWriteFails) {
  const auto r =
      check_linearizable({put(0, "a", "1", 0, 10), put(0, "a", "2", 20, 30), get(1, "a", "1", 40, 50)});
  EXPECT_FALSE(r.ok);
}

TEST(Linearizability, ConcurrentReadMaySeeEitherValue) {
  EXPECT_TRUE(check_linearizable({put(0, "a", "1", 0, 100), get(1, "a", "1", 10, 20)}).ok);
  EXPECT_TRUE(check_linearizable({put(0, "a", "1", 0, 100), get(1, "a", std::nullopt, 10, 20)}).ok);
  // Touching intervals are concurrent, never ordered.
  EXPECT_TRUE(check_linearizable({put(0, "a", "1", 0, 10), get(1, "a", std::nullopt, 10, 20)}).ok);
}

TEST(Linearizability, ReadsMustNotFlipFlop) {
  // Two reads during one write: once one sees the new value, a later one cannot see the old.
  EXPECT_FALSE(check_linearizable({put(0, "a", "1", 0, 100), get(1, "a", "1", 10, 20),
                                   get(2, "a", std::nullopt, 30, 40)})
                   .ok);
  EXPECT_TRUE(check_linearizable({put(0, "a", "1", 0, 100), get(1, "a", std::nullopt, 10, 20),
                                  get(2, "a", "1", 30, 40)})
                  .ok);
}

TEST(Linearizability, IndeterminateWriteMayApplyLateOrNever) {
  EXPECT_TRUE(check_linearizable({put(0, "a", "1", 0, kNever), get(1, "a", std::nullopt, 50, 60)}).ok);
  EXPECT_TRUE(check_linearizable({put(0, "a", "1", 0, kNever), get(1, "a", std::nullopt, 50, 60),
                                  get(1, "a", "1", 5000, 5010)})
                  .ok);
  // Once seen it stays applied.
  EXPECT_FALSE(check_linearizable({put(0, "a", "1", 0, kNever), get(1, "a", "1", 50, 60),
                                   get(1, "a", std::nullopt, 70, 80)})
                   .ok);
  // It cannot apply before it was called.
  EXPECT_FALSE(check_linearizable({get(1, "a", "1", 0, 10), put(0, "a", "1", 20, kNever)}).ok);
}

TEST(Linearizability, CompareAndSwapOutcomesAreChecked) {
  EXPECT_FALSE(check_linearizable({put(0, "a", "x", 0, 10), cas(0, "a", "x", "y", true, 20, 30),
                                   cas(1, "a", "x", "z", true, 40, 50)})
                   .ok);
  EXPECT_TRUE(check_linearizable({put(0, "a", "x", 0, 10), cas(0, "a", "x", "y", true, 20, 30),
                                  cas(1, "a", "x", "z", false, 40, 50)})
                  .ok);
  // Two concurrent CAS from x: exactly one may win.
  EXPECT_FALSE(check_linearizable({put(0, "a", "x", 0, 10), cas(0, "a", "x", "y", true, 20, 50),
                                   cas(1, "a", "x", "z", true, 20, 50)})
                   .ok);
  EXPECT_TRUE(check_linearizable({put(0, "a", "x", 0, 10), cas(0, "a", "x", "y", true, 20, 50),
                                  cas(1, "a", "x", "z", false, 20, 50), get(2, "a", "y", 60, 70)})
                  .ok);
}

TEST(Linearizability, KeysAreIndependent) {
  // Per key fine; together would be fine too (registers compose).
  const auto r = check_linearizable({put(0, "a", "1", 0, 10), put(0, "b", "1", 0, 10), get(1, "b", "1", 20, 30),
                                     get(1, "a", std::nullopt, 20, 30)});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.key, "a");
  EXPECT_EQ(r.keys, 2u);
}

// A generated history from a true atomic register (each op takes effect at a random instant
// inside its interval) must always pass; corrupting one read's output must make it fail.
TEST(Linearizability, GeneratedRegisterHistories) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    Rng rng(seed);
    struct Planned {
      KvOp op;
      uint64_t at;
    };
    std::vector<Planned> plan;
    uint64_t client_free[4] = {0, 0, 0, 0};
    for (int k = 0; k < 40; ++k) {
      const int c = static_cast<int>(rng.below(4));
      const uint64_t call = client_free[c] + rng.below(20);
      const uint64_t ret = call + 1 + rng.below(60);
      client_free[c] = ret + 1;
      const uint64_t at = call + rng.below(ret - call);
      KvOp op;
      op.client = c;
      op.key = "k";
      op.call = call;
      op.ret = ret;
      switch (rng.below(3)) {
        case 0: op.kind = KvOp::Kind::kPut; op.value = std::to_string(k); break;
        case 1: op.kind = KvOp::Kind::kGet; break;
        default:
          op.kind = KvOp::Kind::kCas;
          op.expect = std::to_string(rng.below(static_cast<uint64_t>(k) + 1));
          op.value = "c" + std::to_string(k);
      }
      plan.push_back({op, at * 64 + static_cast<uint64_t>(k)});  // distinct instants
    }
    std::vector<size_t> order(plan.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return plan[a].at < plan[b].at; });
    std::optional<std::string> reg;
    for (size_t i : order) {
      KvOp& op = plan[i].op;
      if (op.kind == KvOp::Kind::kPut) reg = op.value;
      if (op.kind == KvOp::Kind::kGet) op.got = reg;
      if (op.kind == KvOp::Kind::kCas) {
        op.cas_ok = reg == op.expect;
        if (op.cas_ok) reg = op.value;
      }
    }
    std::vector<KvOp> history;
    for (auto& p : plan) history.push_back(p.op);
    const auto good = check_linearizable(history);
    ASSERT_TRUE(good.ok) << "seed " << seed << "\n" << good.explanation;
    // Corrupt the last read that saw a value: it now claims a value never written.
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->kind == KvOp::Kind::kGet) {
        it->got = "never-written";
        break;
      }
    }
    EXPECT_FALSE(check_linearizable(history).ok) << "seed " << seed;
  }
}

TEST(Linearizability, SearchBudgetIsReported) {
  std::vector<KvOp> h;
  for (int i = 0; i < 30; ++i) h.push_back(put(i, "a", std::to_string(i), 0, 1000));
  h.push_back(get(99, "a", "nope", 2000, 2010));
  const auto r = check_linearizable(h, 1000);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.exhausted);
}

}  // namespace
}  // namespace balsa::sim
