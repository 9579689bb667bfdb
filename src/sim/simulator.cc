#include "sim/simulator.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <stdexcept>
#include <variant>

#include "core/assert.h"
#include "core/codec.h"
#include "core/confchange.h"
#include "storage/durable_log.h"
#include "storage/sim_fs.h"
#include "core/raw_node.h"
#include "core/rng.h"
#include "sim/checker.h"

namespace balsa::sim {
namespace {

constexpr uint64_t kTickUs = 10'000;  // one Raft tick is 10 ms of simulated time

// An invariant assertion inside the core becomes a reportable violation, not an abort.
struct InvariantBroken : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void throw_on_assert(const char* file, int line, const char* cond, const std::string& msg) {
  throw InvariantBroken(fmt::format("core invariant at {}:{}: {}: {}", file, line, cond, msg));
}

// The per-seed fault profile: each seed explores a different mix.
struct Faults {
  double drop = 0;           // probability a message is lost
  double duplicate = 0;      // probability a message is delivered twice
  uint64_t delay_min_us = 0;
  uint64_t delay_max_us = 0;
  double spike = 0;          // probability of a long delay (reorders)
  uint64_t fault_every_us = 0;
  uint64_t disk_min_us = 0;
  uint64_t disk_max_us = 0;
  uint64_t snapshot_every = 0;  // applied entries between snapshots
  size_t max_outstanding = 1;   // proposals a client pipelines
  double leader_flap = 0;       // probability a new leader is crashed or cut off within ms
};

struct Deliver { Message msg; };
struct DiskDone { int node; uint64_t incarnation; };
struct Tick {};
struct ClientStep { int client; };
struct Fault {};
struct Heal {};
struct Flap { int node; uint64_t incarnation; bool crash; };
using Payload = std::variant<Deliver, DiskDone, Tick, ClientStep, Fault, Heal, Flap>;

struct Event {
  uint64_t time;
  uint64_t seq;  // ties broken by scheduling order: the run is a pure function of the seed
  Payload payload;
};
struct Later {
  bool operator()(const Event& a, const Event& b) const {
    return a.time != b.time ? a.time > b.time : a.seq > b.seq;
  }
};

struct SimNode {
  NodeId id;
  bool up = true;
  uint64_t incarnation = 0;
  // The real WAL and snapshot store on a simulated disk that loses unsynced writes on a crash.
  std::unique_ptr<SimFileSystem> fs = std::make_unique<SimFileSystem>();
  std::unique_ptr<DurableLog> log;
  std::unique_ptr<RawNode> raw;
  std::optional<Ready> in_flight;  // the Ready whose disk write is under way
  LogIndex sm_applied;             // the state machine: how far it applied, and a hash chain
  uint64_t sm_hash = 0;
  Role role = Role::kFollower;
  LogIndex last_snapshot;
  // Membership: a node once made a witness holds no payloads, so the checkers skip its log and
  // state machine for good (and it is never re-added as a full member).
  bool ever_witness = false;
  int drift = 0;            // -1, 0, +1: a tick lost or gained every 10 (clock drift)
  LogIndex checked_commit;  // as leader: commit indexes checked against the quorum rules
  // What is durable on this node's disk, for the joint-quorum checker: terms of the entries
  // after `durable_base` (a snapshot covers everything at or below it). Survives crashes.
  LogIndex durable_base;
  std::vector<Term> durable;
};

struct Proposal {
  int node;
  uint64_t incarnation;
  LogIndex index;
  Term term;
  std::string command;
  uint64_t deadline;
};

struct Client {
  int guess = 0;  // node believed to be leader
  uint64_t seq = 0;
  std::vector<Proposal> waiting;  // outstanding proposals (pipelined up to max_outstanding)
};

std::string encode_sm(LogIndex applied, uint64_t hash) {
  codec::Writer w;
  w.u64(applied.value);
  w.u64(hash);
  return w.take();
}

class Simulation {
 public:
  explicit Simulation(const SimOptions& o) : opt_(o), rng_(o.seed) {
    BALSA_ASSERT(o.nodes >= 1 && o.nodes <= 9, "nodes must be 1..9, got {}", o.nodes);
    pick_faults();
    for (int i = 0; i < o.nodes; ++i) voters_.push_back(NodeId{static_cast<uint64_t>(i + 1)});
    nodes_.resize(o.nodes);
    membership_ = o.membership;
    // One seed in five of a 5-node run plays the Figure 8 schedule instead of random faults.
    figure8_ = o.nodes == 5 && o.seed % 5 == 0;
    if (figure8_) {
      f_.drop = f_.duplicate = f_.spike = f_.leader_flap = 0;
      f_.snapshot_every = 1000;
    }
    for (int i = 0; i < o.nodes; ++i) {
      nodes_[i].id = voters_[i];
      nodes_[i].drift = static_cast<int>(rng_.below(3)) - 1;
      start_node(i);
    }
    blocked_.assign(o.nodes, std::vector<bool>(o.nodes, false));
    clients_.resize(3);
    for (size_t c = 0; c < clients_.size(); ++c) {
      clients_[c].guess = static_cast<int>(rng_.below(o.nodes));
      schedule(rng_.below(kTickUs), ClientStep{static_cast<int>(c)});
    }
    schedule(kTickUs, Tick{});
    if (!figure8_) schedule(f_.fault_every_us, Fault{});
    heal_at_ = static_cast<uint64_t>(o.safety_ticks) * kTickUs;
    end_at_ = heal_at_ + static_cast<uint64_t>(o.liveness_ticks) * kTickUs;
    clients_stop_at_ = heal_at_ + (end_at_ - heal_at_) / 3;
    schedule(heal_at_, Heal{});
  }

  SimResult run() {
    set_assertion_handler(&throw_on_assert);
    try {
      while (!queue_.empty() && checker_.ok() && !stop_) {
        Event ev = queue_.top();
        queue_.pop();
        if (ev.time > end_at_) break;
        now_ = ev.time;
        result_.events++;
        std::visit([&](auto& p) { handle(p); }, ev.payload);
      }
      if (checker_.ok() && !stop_) check_liveness();
      if (checker_.ok() && !stop_) checker_.finish();
    } catch (const InvariantBroken& e) {
      result_.ok = false;
      result_.violation = e.what();
    } catch (const std::exception& e) {  // e.g. the WAL refusing to recover: a real failure
      result_.ok = false;
      result_.violation = std::string("exception: ") + e.what();
    }
    set_assertion_handler(nullptr);
    if (!checker_.ok()) {
      result_.ok = false;
      result_.violation = *checker_.violation();
    }
    result_.trace_hash = hash_;
    result_.committed = checker_.max_committed().value;
    return result_;
  }

 private:
  // ---- scheduling and tracing ----------------------------------------------------------------
  void schedule(uint64_t delay, Payload p) { queue_.push(Event{now_ + delay, seq_++, std::move(p)}); }

  void mix(uint64_t v) {
    hash_ ^= v + 0x9e3779b97f4a7c15ULL + (hash_ << 6) + (hash_ >> 2);
  }

  template <typename... Args>
  void trace(fmt::format_string<Args...> f, Args&&... args) {
    if (opt_.trace) *opt_.trace << fmt::format("{:>10} ", now_) << fmt::format(f, std::forward<Args>(args)...) << '\n';
  }
  template <typename... Args>
  void timeline(fmt::format_string<Args...> f, Args&&... args) {
    if (opt_.timeline)
      *opt_.timeline << fmt::format("[{:8.3f}s] ", static_cast<double>(now_) / 1e6)
                     << fmt::format(f, std::forward<Args>(args)...) << '\n';
  }

  void pick_faults() {
    const double drops[] = {0, 0.01, 0.05, 0.1, 0.2};
    f_.drop = drops[rng_.below(5)];
    f_.duplicate = rng_.chance(0.5) ? 0.02 * static_cast<double>(rng_.below(3)) : 0;
    f_.delay_min_us = 100 + rng_.below(500);
    f_.delay_max_us = f_.delay_min_us + 500 + rng_.below(10'000);
    f_.spike = rng_.chance(0.5) ? 0.02 : 0;
    f_.fault_every_us = (5 + rng_.below(40)) * kTickUs;
    f_.disk_min_us = 100 + rng_.below(300);
    f_.disk_max_us = f_.disk_min_us + rng_.below(3'000);
    f_.snapshot_every = 10 + rng_.below(100);
    f_.max_outstanding = 1 + rng_.below(16);
    f_.leader_flap = rng_.chance(0.5) ? 0.3 : 0;
    mix(f_.fault_every_us);
    mix(f_.snapshot_every);
  }

  // ---- nodes ---------------------------------------------------------------------------------
  Config config_for(int i) const {
    Config c;
    c.id = nodes_[i].id;
    c.election_ticks = 10;
    c.heartbeat_ticks = 1;
    c.max_msg_bytes = 128;  // small, so catch-up spans many messages
    c.max_inflight_msgs = 8;
    c.max_inflight_bytes = 4096;
    c.forward_proposals = false;  // clients redirect themselves, so no command is duplicated
    c.seed = opt_.seed * 1000003 + nodes_[i].incarnation;
    c.planted_bug = opt_.planted_bug;
    c.debug_invariants = true;
    c.voters = voters_;
    c.lease_reads = true;
    c.lease_drift_ticks = 2;  // the drift below: each clock gains or loses 1 tick in 10
    c.promotion_max_lag = 20;
    c.applied = nodes_[i].log->snapshot().metadata.index;
    return c;
  }

  void start_node(int i) {
    SimNode& n = nodes_[i];
    n.up = true;
    n.in_flight.reset();
    DurableLogOptions lo;
    lo.wal.segment_bytes = 16 << 10;  // small segments: rotation and release happen often
    lo.wal.preallocate = std::mt19937_64(opt_.seed * 1000003 + n.incarnation * 64 + i)() & 1;
    n.log = DurableLog::open(*n.fs, "/data", lo);  // recovery: verifies, cuts a torn tail
    // The state machine restarts from the durable snapshot and re-applies the log after it.
    const Snapshot snap = n.log->snapshot();
    n.sm_applied = snap.metadata.index;
    n.sm_hash = 0;
    if (!snap.empty() && !n.ever_witness) {
      codec::Reader r(snap.data);
      uint64_t applied = 0;
      r.u64(&applied);
      r.u64(&n.sm_hash);
      checker_.on_restore(n.id, LogIndex{applied}, n.sm_hash);
    }
    n.last_snapshot = snap.metadata.index;
    n.raw = std::make_unique<RawNode>(config_for(i), n.log.get());
    n.role = Role::kFollower;
  }

  void crash(int i) {
    SimNode& n = nodes_[i];
    if (!n.up) return;
    n.up = false;
    n.incarnation++;
    // The in-flight disk write was issued but never synced: the power cut keeps some, all or
    // none of it, maybe torn.
    if (n.in_flight && !n.in_flight->entries.empty() && rng_.chance(0.5))
      n.log->wal().save(n.in_flight->hard_state ? &*n.in_flight->hard_state : nullptr, n.in_flight->entries,
                        /*sync=*/false);
    n.raw.reset();
    n.in_flight.reset();
    n.log.reset();
    n.fs->crash(rng_.next());
    result_.crashes++;
    trace("crash n{}", n.id.value);
    timeline("crash    n{}", n.id.value);
    mix(0xC0 + i);
    for (Client& c : clients_)  // outcome unknown: reported to the client as such
      std::erase_if(c.waiting, [&](const Proposal& p) { return p.node == i; });
  }

  void restart(int i) {
    if (nodes_[i].up) return;
    start_node(i);
    trace("restart n{}", nodes_[i].id.value);
    timeline("restart  n{} (durable log to {}, commit {})", nodes_[i].id.value,
             nodes_[i].log->last_index().value, nodes_[i].log->initial_state().hard_state.commit.value);
    mix(0xD0 + i);
  }

  // Hands out the next Ready, if the node is not already writing one.
  void pump(int i) {
    SimNode& n = nodes_[i];
    if (n.up) check_commit_quorum(i);
    figure8_watch(i);
    if (!n.up || n.in_flight || !n.raw->has_ready()) return;
    Ready rd = n.raw->ready();
    if (rd.soft_state) on_soft_state(i, *rd.soft_state);
    const RaftLog& log = n.raw->raft().log();
    const LogIndex durable_commit = n.log->initial_state().hard_state.commit;
    if (!n.ever_witness)
      for (const Entry& e : rd.entries) checker_.on_log_write(n.id, e, log.term(e.index - 1), durable_commit);
    for (Message& m : rd.messages) send(std::move(m));
    rd.messages.clear();
    const uint64_t latency = f_.disk_min_us + rng_.below(f_.disk_max_us - f_.disk_min_us + 1);
    n.in_flight = std::move(rd);
    schedule(latency, DiskDone{i, n.incarnation});
  }

  // Joint quorum rule (thesis §4.1, §4.3): when a leader advances its commit index, the entry
  // there is durable on a majority of each half of the newest configuration in its log (not the
  // newest committed one: that is the planted conf-on-commit bug).
  bool holds(const SimNode& v, LogIndex idx, Term t) const {
    if (idx <= v.durable_base) return true;
    const uint64_t k = idx - v.durable_base - 1;
    return k < v.durable.size() && v.durable[k] == t;
  }
  void check_commit_quorum(int i) {
    SimNode& n = nodes_[i];
    const Raft& raft = n.raw->raft();
    const LogIndex commit = raft.log().committed();
    max_commit_ = std::max(max_commit_, commit);
    if (raft.role() != Role::kLeader) return;
    if (commit <= n.checked_commit) return;
    n.checked_commit = commit;
    const Term t = raft.log().term_or_zero(commit);
    // A commit index on an older term's entry was learned as a follower, before this leadership.
    if (t != raft.term()) return;
    const ConfState& conf = raft.conf_at(raft.log().last_index());
    for (const auto* half : {&conf.voters, &conf.voters_outgoing}) {
      if (half->empty()) continue;
      size_t have = 0;
      for (NodeId v : *half)
        if (index_of(v) >= 0 && index_of(v) < opt_.nodes && holds(nodes_[index_of(v)], commit, t)) have++;
      if (have * 2 <= half->size()) {
        checker_fail(fmt::format("joint quorum: leader n{} (term {}) committed {} of term {} held durably by {} of {} "
                                 "voters of a half of {}",
                                 n.id.value, raft.term().value, commit.value, t.value, have, half->size(),
                                 confchange::describe(conf)));
        return;
      }
    }
  }
  void checker_fail(std::string why) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.violation = std::move(why);
    stop_ = true;
  }

  // ---- the Figure 8 scenario -------------------------------------------------------------------
  // A fault schedule built to reach the state of the paper's Figure 8 (5 nodes, no random
  // faults): (a) leader A replicates entries of its term to B only; (b) A crashes, and E wins
  // the next term with C and D, its entry reaching no one, and crashes; (c) A comes back and
  // wins a later term with C and D (B cut off), replicating its old-term entries; the moment its
  // commit index moves, A crashes; (d) E comes back and can win with C and D. A correct leader
  // only moves its commit index once an entry of its own term is on a majority, so E cannot win
  // then; one that counts replicas of an older term (commit-previous-term) lets E overwrite a
  // committed entry.
  void isolate(int i) {
    for (int j = 0; j < opt_.nodes; ++j) blocked_[i][j] = blocked_[j][i] = i != j;
  }
  int leader_among(const std::vector<int>& v) const {
    for (int i : v)
      if (nodes_[i].up && nodes_[i].role == Role::kLeader) return i;
    return -1;
  }
  void figure8_step() {
    if (now_ >= heal_at_) return;
    Fig8& f = fig8_;
    switch (f.phase) {
      case 0: {
        if (ticks_ < 30) return;
        const int a = leader_among({0, 1, 2, 3, 4});
        if (a < 0) return;
        f.a = a;
        f.b = (a + 1) % 5;
        for (int j = 0; j < 5; ++j)
          if (j != f.a && j != f.b) blocked_[f.a][j] = blocked_[j][f.a] = true;
        for (int k = 0; k < 8; ++k) nodes_[a].raw->propose(fmt::format("fig8-{}", k));
        pump(a);
        timeline("figure8  (a) n{} leads, replicating to n{} only", f.a + 1, f.b + 1);
        f.at = ticks_;
        f.phase = 1;
        return;
      }
      case 1:
        if (ticks_ < f.at + 3) return;
        crash(f.a);
        isolate(f.b);
        f.drop_apps = true;  // the next leader's entries must reach no one
        timeline("figure8  (b) n{} crashed, n{} cut off", f.a + 1, f.b + 1);
        f.phase = 2;
        return;
      case 2: {
        std::vector<int> rest;
        for (int j = 0; j < 5; ++j)
          if (j != f.a && j != f.b) rest.push_back(j);
        const int e = leader_among(rest);
        if (e < 0) return;
        f.e = e;
        isolate(e);
        f.at = ticks_;
        f.phase = 3;
        timeline("figure8  (b) n{} leads term {}, cut off", e + 1, nodes_[e].raw->raft().term().value);
        return;
      }
      case 3:
        if (ticks_ < f.at + 2) return;
        crash(f.e);
        f.drop_apps = false;
        restart(f.a);
        for (int i = 0; i < 5; ++i)
          for (int j = 0; j < 5; ++j)
            blocked_[i][j] = i != j && (i == f.b || j == f.b || i == f.e || j == f.e);
        timeline("figure8  (c) n{} crashed, n{} back", f.e + 1, f.a + 1);
        f.phase = 4;
        return;
      case 4:
        if (nodes_[f.a].role != Role::kLeader) return;
        f.commit = nodes_[f.a].raw->raft().log().committed();
        f.phase = 5;
        return;
      case 6:
        restart(f.e);
        for (int i = 0; i < 5; ++i)
          for (int j = 0; j < 5; ++j) blocked_[i][j] = i != j && (i == f.b || j == f.b);
        timeline("figure8  (d) n{} back", f.e + 1);
        f.phase = 7;
        return;
      default:
        return;
    }
  }
  // Phase 5 runs on every event: A crashes the moment its commit index moves.
  void figure8_watch(int i) {
    Fig8& f = fig8_;
    if (!figure8_ || f.phase != 5 || i != f.a || !nodes_[i].up) return;
    if (nodes_[i].role != Role::kLeader) return;
    if (nodes_[i].raw->raft().log().committed() <= f.commit) return;
    timeline("figure8  (c) n{} committed {}: crash", f.a + 1, nodes_[i].raw->raft().log().committed().value);
    f.phase = 6;
    schedule(0, Flap{i, nodes_[i].incarnation, true});
  }

  // ---- membership ----------------------------------------------------------------------------
  // A random change proposed at the leader: a learner added or promoted, a voter added or
  // removed (the leader too), a joint change of two members, a witness added.
  void membership_fault() {
    int lead = -1;
    for (int i = 0; i < opt_.nodes; ++i)
      if (nodes_[i].up && nodes_[i].role == Role::kLeader) lead = i;
    if (lead < 0) return;
    const Raft& raft = nodes_[lead].raw->raft();
    const ConfState& c = raft.conf();
    if (raft.conf_pending() || c.joint()) return;
    auto member = [&](NodeId id) {
      return std::count(c.voters.begin(), c.voters.end(), id) || std::count(c.learners.begin(), c.learners.end(), id);
    };
    std::vector<NodeId> outside, fresh, voters_but_leader;
    for (const SimNode& n : nodes_) {
      if (member(n.id)) continue;
      outside.push_back(n.id);
      if (!n.ever_witness) fresh.push_back(n.id);
    }
    for (NodeId v : c.voters)
      if (v != nodes_[lead].id) voters_but_leader.push_back(v);
    auto pick = [&](const std::vector<NodeId>& v) { return v[rng_.below(v.size())]; };
    const bool can_shrink = c.voters.size() > 3;
    ConfChangeSet set;
    switch (rng_.below(7)) {
      case 0:
        if (!fresh.empty()) set.changes.push_back({ConfChangeType::kAddLearner, pick(fresh)});
        break;
      case 1:
        if (!c.learners.empty()) set.changes.push_back({ConfChangeType::kPromote, pick(c.learners)});
        break;
      case 2:
        if (can_shrink) set.changes.push_back({ConfChangeType::kRemoveNode, pick(voters_but_leader)});
        break;
      case 3:
        if (can_shrink) set.changes.push_back({ConfChangeType::kRemoveNode, nodes_[lead].id});
        break;
      case 4:
        if (!fresh.empty()) set.changes.push_back({ConfChangeType::kAddVoter, pick(fresh)});
        break;
      case 5:  // joint: replace a voter by another machine
        if (!fresh.empty() && !voters_but_leader.empty()) {
          set.changes.push_back({ConfChangeType::kRemoveNode, pick(voters_but_leader)});
          set.changes.push_back({ConfChangeType::kAddVoter, pick(fresh)});
        }
        break;
      default:
        if (!outside.empty() && c.witnesses.empty() && !can_shrink)
          set.changes.push_back({ConfChangeType::kAddWitness, pick(outside)});
        else if (!c.learners.empty())
          set.changes.push_back({ConfChangeType::kRemoveNode, pick(c.learners)});
        break;
    }
    if (set.changes.empty()) return;
    const ConfProposeResult r = nodes_[lead].raw->propose_conf_change(set);
    std::string what;
    for (const ConfChange& cc : set.changes) what += fmt::format("{} n{} ", to_string(cc.type), cc.node.value);
    trace("conf change at n{}: {}-> {}", nodes_[lead].id.value, what, r.ok() ? confchange::describe(r.conf) : to_string(r.error));
    timeline("conf     {}at n{}: {}", what, nodes_[lead].id.value, r.ok() ? confchange::describe(r.conf) : to_string(r.error));
    mix(0xC0F + static_cast<uint64_t>(r.error) + r.index.value);
    if (!r.ok()) return;
    result_.conf_changes++;
    for (const ConfChange& cc : set.changes)
      if (cc.type == ConfChangeType::kAddWitness) nodes_[index_of(cc.node)].ever_witness = true;
    pump(lead);
  }

  // Lease reads at every node that believes it leads; a served read must see every index any
  // node knows committed (a lease held while another leader commits is a stale read).
  void lease_reads() {
    for (int i = 0; i < opt_.nodes; ++i) {
      SimNode& n = nodes_[i];
      if (!n.up || n.role != Role::kLeader || !rng_.chance(0.5)) continue;
      const ReadStatus st = n.raw->read_lease(fmt::format("lease-{}", ++lease_seq_));
      mix(0x1EA5E + static_cast<uint64_t>(st));
      if (st != ReadStatus::kServed) continue;
      result_.lease_reads++;
      const LogIndex at = n.raw->raft().log().committed();
      if (at < max_commit_) {
        checker_fail(fmt::format("linearizable lease read: n{} (term {}) served a lease read at {} but index {} was "
                                 "already committed",
                                 n.id.value, n.raw->raft().term().value, at.value, max_commit_.value));
        return;
      }
      pump(i);
    }
  }

  void on_soft_state(int i, const SoftState& s) {
    SimNode& n = nodes_[i];
    const Raft& raft = n.raw->raft();
    if (s.role == Role::kLeader && n.role != Role::kLeader) {
      result_.elections++;
      n.checked_commit = raft.log().committed();
      checker_.on_leader(n.id, raft.term(), now_);
      const RaftLog& log = raft.log();
      checker_.check_leader_complete(n.id, raft.term(), log.first_index(),
                                     [&](LogIndex idx) { return log.term(idx); });
      trace("leader n{} term {}", n.id.value, raft.term().value);
      timeline("leader   n{} elected for term {} (log to {}, commit {})", n.id.value, raft.term().value,
               log.last_index().value, log.committed().value);
      // Leader churn right after an election: the window where Figure 8 bites.
      if (now_ < heal_at_ && rng_.chance(f_.leader_flap))
        schedule(rng_.below(10'000), Flap{i, n.incarnation, rng_.chance(0.5)});
    } else if (s.role != Role::kLeader && n.role == Role::kLeader) {
      timeline("stepdown n{} in term {}", n.id.value, raft.term().value);
    }
    n.role = s.role;
  }

  void handle(DiskDone& d) {
    SimNode& n = nodes_[d.node];
    if (!n.up || n.incarnation != d.incarnation || !n.in_flight) return;
    Ready rd = std::move(*n.in_flight);
    n.in_flight.reset();
    mix(0xD15C ^ rd.number);
    // Durable now: snapshot, entries, hard state, in that order.
    if (rd.snapshot) {
      n.log->apply_snapshot(*rd.snapshot);
      n.durable_base = rd.snapshot->metadata.index;
      n.durable.clear();
      if (n.ever_witness) {
        n.sm_applied = rd.snapshot->metadata.index;  // metadata only: nothing to restore
      } else {
        codec::Reader r(rd.snapshot->data);
        uint64_t applied = 0;
        r.u64(&applied);
        r.u64(&n.sm_hash);
        n.sm_applied = LogIndex{applied};
        checker_.on_restore(n.id, n.sm_applied, n.sm_hash);
      }
      trace("n{} restored snapshot at {}", n.id.value, rd.snapshot->metadata.index.value);
    }
    if (!rd.entries.empty() || rd.hard_state) n.log->persist(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries);
    for (const Entry& e : rd.entries) {
      if (e.index <= n.durable_base) continue;
      n.durable.resize(e.index - n.durable_base - 1);
      n.durable.push_back(e.term);
    }
    for (Message& m : rd.persisted_messages) send(std::move(m));
    apply(d.node, rd.committed_entries);
    n.raw->advance(rd);
    maybe_snapshot(d.node);
    pump(d.node);
  }

  void apply(int i, const std::vector<Entry>& entries) {
    SimNode& n = nodes_[i];
    for (const Entry& e : entries) {
      if (e.index <= n.sm_applied) continue;  // covered by a restored snapshot
      BALSA_ASSERT(e.index == n.sm_applied + 1, "node {} applies {} after {}", n.id.value,
                   e.index.value, n.sm_applied.value);
      n.sm_applied = e.index;
      if (n.ever_witness) continue;  // no payloads, no state machine
      n.sm_hash = chain_hash(n.sm_hash, e);
      checker_.on_apply(n.id, e, n.sm_hash);
      for (Client& c : clients_) {
        std::erase_if(c.waiting, [&](const Proposal& p) {
          if (p.node != i || p.index != e.index) return false;
          if (e.term == p.term) {
            BALSA_ASSERT(e.data == p.command, "index {} term {} holds {} not {}", e.index.value,
                         e.term.value, e.data, p.command);
            checker_.on_ack(e.data, e.index);
            result_.acked++;
            acked_after_heal_ += now_ >= heal_at_;
          }
          return true;  // applied with another term: the proposal was lost, and reported
        });
      }
    }
    if (!entries.empty()) {
      const RaftLog& log = n.raw->raft().log();
      checker_.on_commit(n.id, n.incarnation, log.committed(), log.term_or_zero(log.committed()),
                         n.raw->raft().term());
    }
  }

  void maybe_snapshot(int i) {
    SimNode& n = nodes_[i];
    if (n.sm_applied < n.last_snapshot + f_.snapshot_every) return;
    if (n.sm_applied > n.log->last_index()) return;
    const std::string image = encode_sm(n.sm_applied, n.sm_hash);
    n.log->create_snapshot(n.sm_applied, n.raw->raft().conf_at(n.sm_applied), [&](ByteSink& out) { out.write(image); });
    n.last_snapshot = n.sm_applied;
    // Keep a few entries so a follower just behind can still be caught up from the log.
    const uint64_t keep = 5;
    if (n.sm_applied.value > keep && n.sm_applied - keep >= n.log->first_index()) n.log->compact(n.sm_applied - keep);
    trace("n{} snapshot at {}", n.id.value, n.sm_applied.value);
  }

  // ---- network -------------------------------------------------------------------------------
  int index_of(NodeId id) const { return static_cast<int>(id.value) - 1; }

  void send(Message m) {
    result_.messages++;
    const int from = index_of(m.from), to = index_of(m.to);
    mix((static_cast<uint64_t>(m.type) << 56) ^ (m.from.value << 48) ^ (m.to.value << 40) ^
        m.term.value ^ (m.index.value << 8) ^ m.entries.size());
    if (to < 0 || to >= opt_.nodes) return;
    const bool fig8_drop = fig8_.drop_apps && (m.type == MessageType::kApp || m.type == MessageType::kSnap);
    if (blocked_[from][to] || fig8_drop || (now_ < heal_at_ && rng_.chance(f_.drop))) {
      trace("drop {} n{}->n{} term {} index {}", to_string(m.type), m.from.value, m.to.value,
            m.term.value, m.index.value);
      return;
    }
    const int copies = (now_ < heal_at_ && rng_.chance(f_.duplicate)) ? 2 : 1;
    for (int k = 0; k < copies; ++k) {
      uint64_t delay = f_.delay_min_us + rng_.below(f_.delay_max_us - f_.delay_min_us + 1);
      if (now_ < heal_at_ && rng_.chance(f_.spike)) delay += rng_.below(20 * kTickUs);
      schedule(delay, Deliver{m});
    }
  }

  void handle(Deliver& d) {
    const Message& m = d.msg;
    const int to = index_of(m.to);
    SimNode& n = nodes_[to];
    if (!n.up) return;
    trace("recv {} n{}->n{} term {} index {} logterm {} n={} commit {}{}", to_string(m.type), m.from.value,
          m.to.value, m.term.value, m.index.value, m.log_term.value, m.entries.size(), m.commit.value,
          m.reject ? " reject" : "");
    n.raw->step(m);
    pump(to);
  }

  void handle(Tick&) {
    ticks_++;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i].up) continue;
      // Clock drift within the lease's bound: a tick gained or lost every 10.
      const int reps = ticks_ % 10 == 5 ? 1 + nodes_[i].drift : 1;
      for (int k = 0; k < reps; ++k) nodes_[i].raw->tick();
      pump(static_cast<int>(i));
    }
    lease_reads();
    if (stop_) return;
    if (figure8_) figure8_step();
    if (now_ % (50 * kTickUs) == 0) {
      LogIndex commit{0};
      for (const SimNode& n : nodes_)
        if (n.up) commit = std::max(commit, n.raw->raft().log().committed());
      timeline("progress commit {} , {} acked", commit.value, result_.acked);
    }
    schedule(kTickUs, Tick{});
  }

  // ---- clients -------------------------------------------------------------------------------
  void handle(ClientStep& s) {
    Client& c = clients_[s.client];
    schedule(1000 + rng_.below(20'000), ClientStep{s.client});
    // Timed out: reported to the client as unknown.
    std::erase_if(c.waiting, [&](const Proposal& p) { return now_ > p.deadline; });
    if (c.waiting.size() >= f_.max_outstanding || now_ >= clients_stop_at_) return;
    SimNode& n = nodes_[c.guess];
    if (!n.up) {
      c.guess = static_cast<int>(rng_.below(opt_.nodes));
      return;
    }
    const std::string cmd = fmt::format("c{}-{}", s.client, ++c.seq);
    ProposeResult r = n.raw->propose(cmd);
    trace("client {} propose {} at n{}: {}", s.client, cmd, n.id.value, to_string(r.status));
    mix(static_cast<uint64_t>(r.status) ^ r.first_index.value);
    switch (r.status) {
      case ProposeStatus::kAppended:
        c.waiting.push_back(Proposal{c.guess, n.incarnation, r.first_index, r.term, cmd, now_ + 100 * kTickUs});
        pump(c.guess);
        break;
      case ProposeStatus::kNotLeader:
      case ProposeStatus::kForwarded:
      case ProposeStatus::kDropped:
        c.guess = r.leader != kNoNode ? index_of(r.leader) : static_cast<int>(rng_.below(opt_.nodes));
        break;
    }
  }

  // ---- faults --------------------------------------------------------------------------------
  void handle(Fault&) {
    if (now_ >= heal_at_) return;
    schedule(f_.fault_every_us / 2 + rng_.below(f_.fault_every_us), Fault{});
    const int n = opt_.nodes;
    const uint64_t kind = rng_.below(membership_ ? 13 : 10);
    mix(0xFA000 + kind);
    switch (kind) {
      case 10:
      case 11:
      case 12:
        membership_fault();
        break;
      case 0:
      case 1:
        crash(static_cast<int>(rng_.below(n)));
        break;
      case 2:
      case 3:
        for (int i = 0; i < n; ++i)
          if (!nodes_[i].up) {
            restart(i);
            break;
          }
        break;
      case 4: {  // symmetric partition into two random sides
        std::vector<int> side(n);
        for (int i = 0; i < n; ++i) side[i] = static_cast<int>(rng_.below(2));
        for (int a = 0; a < n; ++a)
          for (int b = 0; b < n; ++b) blocked_[a][b] = side[a] != side[b];
        timeline("partition {}", describe_sides(side));
        break;
      }
      case 5: {  // asymmetric: some links lose one direction only
        for (int k = 0; k < n; ++k) {
          const int a = static_cast<int>(rng_.below(n)), b = static_cast<int>(rng_.below(n));
          if (a != b) blocked_[a][b] = true;
        }
        timeline("asymmetric link cuts");
        break;
      }
      case 6: {  // bridge: two sides that only one node connects
        const int bridge = static_cast<int>(rng_.below(n));
        std::vector<int> side(n);
        for (int i = 0; i < n; ++i) side[i] = i == bridge ? 2 : static_cast<int>(i % 2);
        for (int a = 0; a < n; ++a)
          for (int b = 0; b < n; ++b)
            blocked_[a][b] = side[a] != 2 && side[b] != 2 && side[a] != side[b];
        timeline("bridge partition through n{}", bridge + 1);
        break;
      }
      case 7:
      case 8:
        heal_network();
        break;
      default:  // isolate the current leader, the classic case
        for (int i = 0; i < n; ++i)
          if (nodes_[i].up && nodes_[i].role == Role::kLeader) {
            for (int j = 0; j < n; ++j) blocked_[i][j] = blocked_[j][i] = i != j;
            timeline("isolate  leader n{}", i + 1);
            break;
          }
        break;
    }
  }

  void handle(Flap& f) {
    if (now_ >= heal_at_ || !nodes_[f.node].up || nodes_[f.node].incarnation != f.incarnation) return;
    mix(0xF1A9 + f.node);
    if (f.crash) return crash(f.node);
    for (int j = 0; j < opt_.nodes; ++j) blocked_[f.node][j] = blocked_[j][f.node] = f.node != j;
    timeline("isolate  leader n{}", f.node + 1);
  }

  std::string describe_sides(const std::vector<int>& side) const {
    std::string a, b;
    for (size_t i = 0; i < side.size(); ++i) (side[i] ? b : a) += fmt::format("n{} ", i + 1);
    return fmt::format("{{ {}}} | {{ {}}}", a, b);
  }

  void heal_network() {
    for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
    timeline("heal     network");
  }

  void handle(Heal&) {
    fig8_.drop_apps = false;
    heal_network();
    for (int i = 0; i < opt_.nodes; ++i) restart(i);
    f_.delay_min_us = 100;
    f_.delay_max_us = 2'000;
    timeline("liveness phase: all faults healed");
    trace("heal");
  }

  void check_liveness() {
    // A leader known to every node, every proposal resolved, every node applied the same log.
    // Only members of the leader's configuration count: a removed machine follows no one.
    NodeId leader = kNoNode;
    Term best;
    for (const SimNode& n : nodes_)
      if (n.role == Role::kLeader && n.raw->raft().term() >= best) {
        leader = n.id;
        best = n.raw->raft().term();
      }
    auto fail = [&](std::string why) {
      result_.ok = false;
      result_.violation = fmt::format("liveness: {} within {} ticks after healing", why, opt_.liveness_ticks);
    };
    if (leader == kNoNode) return fail("no leader");
    const SimNode& ln = nodes_[index_of(leader)];
    const ConfState& conf = ln.raw->raft().conf();
    const LogIndex applied = ln.sm_applied;
    for (const SimNode& n : nodes_) {
      if (!ln.raw->raft().tracker().is_member(n.id)) continue;
      if (n.raw->raft().leader() != leader)
        return fail(fmt::format("n{} does not follow leader n{} ({})", n.id.value, leader.value,
                                confchange::describe(conf)));
      if (n.sm_applied != applied)
        return fail(fmt::format("n{} applied {} but leader n{} applied {}", n.id.value, n.sm_applied.value,
                                leader.value, applied.value));
    }
    for (const Client& c : clients_)
      if (!c.waiting.empty()) return fail(fmt::format("proposal {} unresolved", c.waiting.front().command));
    if (acked_after_heal_ == 0) return fail("no proposal committed");
  }

  SimOptions opt_;
  Rng rng_;
  Faults f_;
  std::vector<NodeId> voters_;
  std::vector<SimNode> nodes_;
  std::vector<std::vector<bool>> blocked_;  // blocked_[from][to]
  std::vector<Client> clients_;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  SafetyChecker checker_;
  SimResult result_;
  uint64_t now_ = 0, seq_ = 0, hash_ = 0x243f6a8885a308d3ULL;
  uint64_t heal_at_ = 0, end_at_ = 0, clients_stop_at_ = 0;
  uint64_t acked_after_heal_ = 0;
  bool membership_ = true;
  bool figure8_ = false;
  struct Fig8 {
    int phase = 0, a = -1, b = -1, e = -1;
    uint64_t at = 0;
    LogIndex commit;
    bool drop_apps = false;
  } fig8_;
  bool stop_ = false;
  uint64_t ticks_ = 0, lease_seq_ = 0;
  LogIndex max_commit_;
};

}  // namespace

SimResult run_simulation(const SimOptions& options) { return Simulation(options).run(); }

}  // namespace balsa::sim
