// A deterministic in-process cluster of RawNodes for unit tests of the core.
//
// Each node has its own MemoryStorage. The harness drives the Ready contract exactly as a real
// runtime must: Ready::messages go on the wire at once; the snapshot, entries and hard state are
// then written to the MemoryStorage; only after that do Ready::persisted_messages go out; the
// committed entries are recorded as applied and the Ready is advanced.
//
// The network is a FIFO queue with controllable faults: cut a link (one direction), isolate a
// node, or install a filter that may drop or rewrite any message. Nothing is delivered until
// deliver()/stabilize() is called, so a test can inspect what is in flight.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/memory_storage.h"
#include "core/raw_node.h"

namespace balsa::test {

inline NodeId N(uint64_t v) { return NodeId{v}; }
inline Term T(uint64_t v) { return Term{v}; }
inline LogIndex I(uint64_t v) { return LogIndex{v}; }

inline std::vector<NodeId> ids(uint64_t n) {
  std::vector<NodeId> v;
  for (uint64_t k = 1; k <= n; ++k) v.push_back(NodeId{k});
  return v;
}

// A config with small, test-friendly defaults.
inline Config test_config(NodeId id, std::vector<NodeId> voters) {
  Config c;
  c.id = id;
  c.voters = std::move(voters);
  c.election_ticks = 10;
  c.heartbeat_ticks = 1;
  c.seed = 42;
  c.debug_invariants = true;
  return c;
}

class TestCluster {
 public:
  struct Peer {
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> node;
    std::vector<Entry> applied;           // every committed entry handed out, in order
    std::vector<ReadState> read_states;   // every read state handed out
    std::vector<Snapshot> snapshots;      // every snapshot persisted
  };

  // n voters with ids 1..n. `tweak` may adjust each node's config before it is built.
  explicit TestCluster(size_t n, const std::function<void(Config&)>& tweak = {}) {
    const auto voters = ids(n);
    for (NodeId id : voters) {
      Config c = test_config(id, voters);
      if (tweak) tweak(c);
      add(c);
    }
  }

  // Adds a node built from `c` (its storage may be prepared by `prepare` before construction).
  void add(const Config& c, const std::function<void(MemoryStorage&)>& prepare = {}) {
    Peer p;
    p.storage = std::make_unique<MemoryStorage>();
    if (prepare) prepare(*p.storage);
    p.node = std::make_unique<RawNode>(c, p.storage.get());
    peers_[c.id] = std::move(p);
  }

  RawNode& node(NodeId id) { return *peers_.at(id).node; }
  RawNode& node(uint64_t id) { return node(NodeId{id}); }
  const Raft& raft(uint64_t id) { return node(id).raft(); }
  MemoryStorage& storage(uint64_t id) { return *peers_.at(NodeId{id}).storage; }
  Peer& peer(uint64_t id) { return peers_.at(NodeId{id}); }
  std::vector<NodeId> node_ids() const {
    std::vector<NodeId> v;
    for (const auto& [id, p] : peers_) v.push_back(id);
    return v;
  }

  // ---- network faults
  void cut(uint64_t from, uint64_t to) { cut_.insert({N(from), N(to)}); }
  void isolate(uint64_t id) { isolated_.insert(N(id)); }
  void heal() {
    cut_.clear();
    isolated_.clear();
  }
  // Returns false to drop; may rewrite the message in place.
  void set_filter(std::function<bool(Message&)> f) { filter_ = std::move(f); }
  // Sees every Ready before it is processed (interaction tests print them).
  void set_on_ready(std::function<void(NodeId, const Ready&)> f) { on_ready_ = std::move(f); }
  // Removes a node (a crashed machine): its messages are dropped from now on.
  void remove(uint64_t id) { peers_.erase(NodeId{id}); }

  // ---- the Ready dance for one node; returns true if there was a Ready.
  bool process_ready(NodeId id) {
    Peer& p = peers_.at(id);
    if (!p.node->has_ready()) return false;
    Ready rd = p.node->ready();
    if (on_ready_) on_ready_(id, rd);
    for (Message& m : rd.messages) send(std::move(m));
    // Persist: snapshot first (it replaces the log), then entries, then the hard state.
    if (rd.snapshot) {
      p.storage->apply_snapshot(*rd.snapshot);
      p.snapshots.push_back(*rd.snapshot);
    }
    p.storage->append(rd.entries);
    if (rd.hard_state) p.storage->set_hard_state(*rd.hard_state);
    // Durable now: the messages that promise it may leave.
    for (Message& m : rd.persisted_messages) send(std::move(m));
    for (const Entry& e : rd.committed_entries) p.applied.push_back(e);
    for (const ReadState& r : rd.read_states) p.read_states.push_back(r);
    p.node->advance(rd);
    return true;
  }
  bool process_ready(uint64_t id) { return process_ready(NodeId{id}); }

  // Delivers every message currently queued (not ones produced while delivering).
  size_t deliver() {
    std::deque<Message> batch = std::exchange(queue_, {});
    for (Message& m : batch) {
      auto it = peers_.find(m.to);
      if (it == peers_.end()) continue;
      it->second.node->step(m);
    }
    return batch.size();
  }

  // Runs Readies and deliveries until the cluster is quiet.
  void stabilize() {
    for (int round = 0; round < 10000; ++round) {
      bool any = false;
      for (auto& [id, p] : peers_) any |= process_ready(id);
      any |= deliver() > 0;
      if (!any) return;
    }
    ADD_FAILURE() << "cluster did not stabilize";
  }

  void tick(uint64_t id, int n = 1) {
    for (int k = 0; k < n; ++k) node(id).tick();
  }
  void tick_all(int n = 1) {
    for (int k = 0; k < n; ++k)
      for (auto& [id, p] : peers_) p.node->tick();
  }

  // Ticks only `id` (stabilizing after each tick) until it leads. Fails the test if it cannot.
  void elect(uint64_t id) {
    for (int k = 0; k < 100; ++k) {
      stabilize();
      if (raft(id).role() == Role::kLeader) return;
      tick(id);
    }
    stabilize();
    ASSERT_EQ(raft(id).role(), Role::kLeader) << "node " << id << " did not win an election";
  }

  // Proposes on `id` and stabilizes; returns the result of the proposal.
  ProposeResult propose(uint64_t id, std::string data) {
    auto r = node(id).propose(std::move(data));
    stabilize();
    return r;
  }

  // Messages queued and not yet delivered.
  std::deque<Message>& queue() { return queue_; }
  std::vector<Message> take_queue() {
    std::vector<Message> v(queue_.begin(), queue_.end());
    queue_.clear();
    return v;
  }
  // Everything that was ever put on the wire (after faults), for assertions.
  const std::vector<Message>& sent() const { return sent_; }
  void clear_sent() { sent_.clear(); }

  std::vector<std::string> applied_data(uint64_t id) {
    std::vector<std::string> v;
    for (const Entry& e : peer(id).applied)
      if (!e.data.empty()) v.push_back(e.data);
    return v;
  }

 private:
  void send(Message m) {
    if (isolated_.contains(m.from) || isolated_.contains(m.to)) return;
    if (cut_.contains({m.from, m.to})) return;
    if (filter_ && !filter_(m)) return;
    sent_.push_back(m);
    queue_.push_back(std::move(m));
  }

  std::map<NodeId, Peer> peers_;
  std::deque<Message> queue_;
  std::vector<Message> sent_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::set<NodeId> isolated_;
  std::function<bool(Message&)> filter_;
  std::function<void(NodeId, const Ready&)> on_ready_;
};

// ---- single-node helpers for tests that drive one RawNode by hand.

// A node over its own storage, for white-box tests of one node's reactions.
struct Solo {
  std::unique_ptr<MemoryStorage> storage = std::make_unique<MemoryStorage>();
  std::unique_ptr<RawNode> node;

  explicit Solo(Config c, const std::function<void(MemoryStorage&)>& prepare = {}) {
    if (prepare) prepare(*storage);
    node = std::make_unique<RawNode>(c, storage.get());
  }
  const Raft& raft() const { return node->raft(); }
  // Runs one Ready (persisting it) and returns it; an empty Ready if there was none.
  Ready drain() {
    if (!node->has_ready()) return {};
    Ready rd = node->ready();
    if (rd.snapshot) storage->apply_snapshot(*rd.snapshot);
    storage->append(rd.entries);
    if (rd.hard_state) storage->set_hard_state(*rd.hard_state);
    node->advance(rd);
    return rd;
  }
  // All messages (immediate and persisted) of one Ready.
  std::vector<Message> drain_msgs() {
    Ready rd = drain();
    std::vector<Message> v = rd.messages;
    v.insert(v.end(), rd.persisted_messages.begin(), rd.persisted_messages.end());
    return v;
  }
};

// A storage holding entries with the given terms at indexes 1..n, and a hard state.
inline std::function<void(MemoryStorage&)> with_log(std::vector<uint64_t> terms,
                                                    uint64_t hs_term = 0, uint64_t commit = 0) {
  return [terms = std::move(terms), hs_term, commit](MemoryStorage& s) {
    std::vector<Entry> es;
    for (size_t k = 0; k < terms.size(); ++k) {
      // Built with append, not `"e" + std::to_string(...)`: GCC 12 at -O3 reports a false
      // -Wrestrict on that operator+ (the Release build of core_bugs_test).
      std::string data = "e";
      data.append(std::to_string(k + 1));
      es.push_back(Entry{Term{terms[k]}, LogIndex{k + 1}, EntryType::kNormal, std::move(data)});
    }
    s.append(es);
    uint64_t t = hs_term;
    if (t == 0 && !terms.empty()) t = terms.back();
    if (t != 0 || commit != 0) s.set_hard_state(HardState{Term{t}, kNoNode, LogIndex{commit}});
  };
}

inline std::vector<Message> of_type(const std::vector<Message>& ms, MessageType t) {
  std::vector<Message> out;
  for (const Message& m : ms)
    if (m.type == t) out.push_back(m);
  return out;
}

inline Message msg(MessageType type, uint64_t from, uint64_t to, uint64_t term) {
  Message m;
  m.type = type;
  m.from = NodeId{from};
  m.to = NodeId{to};
  m.term = Term{term};
  return m;
}

inline Entry ent(uint64_t term, uint64_t index, std::string data = {}) {
  return Entry{Term{term}, LogIndex{index}, EntryType::kNormal, std::move(data)};
}

}  // namespace balsa::test
