// Benchmarks of the Raft core alone (in-memory storage, no I/O): the cost of consensus logic.
//
//   ./build/bench/core_bench
//
// BM_OneNodePropose mirrors etcd-raft's BenchmarkOneNode: one voter, each proposal goes
// through ready/persist/advance until it comes out committed.
#include <benchmark/benchmark.h>

#include <deque>
#include <memory>

#include "core/memory_storage.h"
#include "core/raw_node.h"

namespace balsa {
namespace {

Config make_config(uint64_t id, std::vector<NodeId> voters) {
  Config c;
  c.id = NodeId{id};
  c.voters = std::move(voters);
  c.election_ticks = 10;
  c.heartbeat_ticks = 1;
  c.seed = id;
  return c;
}

// Persists a Ready into the in-memory storage, as the runtime would into its WAL.
void persist(MemoryStorage& s, const Ready& rd) {
  if (rd.snapshot) s.apply_snapshot(*rd.snapshot);
  s.append(rd.entries);
  if (rd.hard_state) s.set_hard_state(*rd.hard_state);
}

void elect_single(RawNode& n, MemoryStorage& s) {
  for (int i = 0; i < 40 && n.raft().role() != Role::kLeader; ++i) {
    n.tick();
    while (n.has_ready()) {
      Ready rd = n.ready();
      persist(s, rd);
      n.advance(rd);
    }
  }
}

void BM_OneNodePropose(benchmark::State& state) {
  MemoryStorage storage;
  RawNode node(make_config(1, {NodeId{1}}), &storage);
  elect_single(node, storage);
  const std::string payload(static_cast<size_t>(state.range(0)), 'x');
  uint64_t committed = 0;
  for (auto _ : state) {
    node.propose(payload);
    while (node.has_ready()) {
      Ready rd = node.ready();
      persist(storage, rd);
      committed += rd.committed_entries.size();
      node.advance(rd);
    }
    // Keep the in-memory log bounded, as snapshots would.
    if (storage.last_index().value % 4096 == 0) storage.compact(node.raft().log().applied() - 1);
  }
  if (committed + 2 < static_cast<uint64_t>(state.iterations())) state.SkipWithError("proposals did not commit");
  state.SetItemsProcessed(static_cast<int64_t>(committed));
}
BENCHMARK(BM_OneNodePropose)->Arg(16)->Arg(256);

// Three nodes in one process on a zero-latency network: committed entries per second.
class Cluster {
 public:
  Cluster() {
    std::vector<NodeId> voters{NodeId{1}, NodeId{2}, NodeId{3}};
    for (uint64_t i = 1; i <= 3; ++i) {
      storages_.push_back(std::make_unique<MemoryStorage>());
      auto cfg = make_config(i, voters);
      cfg.max_inflight_msgs = 1024;
      nodes_.push_back(std::make_unique<RawNode>(cfg, storages_.back().get()));
    }
    for (int i = 0; i < 100 && leader() == nullptr; ++i) {
      nodes_[0]->tick();
      pump();
    }
  }
  RawNode* leader() {
    for (auto& n : nodes_)
      if (n->raft().role() == Role::kLeader) return n.get();
    return nullptr;
  }
  // Delivers everything until no node has work left; returns entries committed on the leader.
  uint64_t pump() {
    uint64_t committed = 0;
    bool busy = true;
    while (busy) {
      busy = false;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        RawNode& n = *nodes_[i];
        if (!n.has_ready()) continue;
        busy = true;
        Ready rd = n.ready();
        for (Message& m : rd.messages) inbox_.push_back(std::move(m));
        persist(*storages_[i], rd);
        for (Message& m : rd.persisted_messages) inbox_.push_back(std::move(m));
        if (n.raft().role() == Role::kLeader) committed += rd.committed_entries.size();
        n.advance(rd);
      }
      while (!inbox_.empty()) {
        Message m = std::move(inbox_.front());
        inbox_.pop_front();
        nodes_[m.to.value - 1]->step(m);
        busy = true;
      }
    }
    return committed;
  }
  void compact() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const LogIndex applied = nodes_[i]->raft().log().applied();
      if (applied.value > 1024) storages_[i]->compact(applied - 512);
    }
  }

 private:
  std::vector<std::unique_ptr<MemoryStorage>> storages_;
  std::vector<std::unique_ptr<RawNode>> nodes_;
  std::deque<Message> inbox_;
};

void BM_ThreeNodeCommit(benchmark::State& state) {
  Cluster c;
  RawNode* leader = c.leader();
  if (!leader) return state.SkipWithError("no leader");
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string payload(256, 'x');
  uint64_t committed = 0, rounds = 0;
  for (auto _ : state) {
    std::vector<std::string> cmds(batch, payload);
    leader->propose(std::move(cmds));
    committed += c.pump();
    if (++rounds % 64 == 0) c.compact();
  }
  if (committed < batch * static_cast<uint64_t>(state.iterations())) state.SkipWithError("not all committed");
  state.SetItemsProcessed(static_cast<int64_t>(committed));
  state.SetBytesProcessed(static_cast<int64_t>(committed * payload.size()));
}
BENCHMARK(BM_ThreeNodeCommit)->Arg(1)->Arg(64);

// The issue-12 figure: 3 nodes in one process, 16-byte commands, batches of 1, 64 and 1,024 per
// propose call. Everything runs on one thread, so items_per_second (computed by Google Benchmark
// from CPU time) is committed entries per second per core, all three nodes' work included.
void BM_ThreeNodeCommit16(benchmark::State& state) {
  Cluster c;
  RawNode* leader = c.leader();
  if (!leader) return state.SkipWithError("no leader");
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string payload(16, 'x');
  uint64_t committed = 0, rounds = 0;
  std::vector<std::string> cmds;
  for (auto _ : state) {
    cmds.assign(batch, payload);
    leader->propose(std::move(cmds));
    committed += c.pump();
    if (++rounds % 64 == 0 || batch >= 1024) c.compact();
  }
  if (committed < batch * static_cast<uint64_t>(state.iterations())) state.SkipWithError("not all committed");
  state.SetItemsProcessed(static_cast<int64_t>(committed));
  state.counters["entries_per_core_s"] =
      benchmark::Counter(static_cast<double>(committed), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ThreeNodeCommit16)->Arg(1)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace balsa

BENCHMARK_MAIN();
