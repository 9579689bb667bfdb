#include "sim/node_sim.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <queue>
#include <stdexcept>

#include "core/assert.h"
#include "core/rng.h"
#include "kv/command.h"
#include "kv/kv_state_machine.h"
#include "sim/linearizability.h"
#include "sim/watch_checker.h"
#include "storage/durable_log.h"
#include "storage/errors.h"
#include "storage/sim_fs.h"

namespace balsa::sim {
namespace {

using namespace std::chrono_literals;
namespace pb = ::etcdserverpb;

struct InvariantBroken : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void throw_on_assert(const char* file, int line, const char* cond, const std::string& msg) {
  throw InvariantBroken(fmt::format("core invariant at {}:{}: {}: {}", file, line, cond, msg));
}

// Virtual time in microseconds; events at equal times run in scheduling order.
class Scheduler {
 public:
  uint64_t now() const { return now_; }
  void at(uint64_t time, std::function<void()> fn) { q_.push(Ev{std::max(time, now_), seq_++, std::move(fn)}); }
  // Runs the next event if it is due by `until`.
  bool run_one(uint64_t until) {
    if (q_.empty() || q_.top().time > until) return false;
    Ev ev = std::move(const_cast<Ev&>(q_.top()));
    q_.pop();
    now_ = ev.time;
    ev.fn();
    return true;
  }
  void run_until(uint64_t until) {
    while (run_one(until)) {
    }
    now_ = std::max(now_, until);
  }

 private:
  struct Ev {
    uint64_t time;
    uint64_t seq;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Ev& a, const Ev& b) const { return a.time != b.time ? a.time > b.time : a.seq > b.seq; }
  };
  uint64_t now_ = 0;
  uint64_t seq_ = 0;
  std::priority_queue<Ev, std::vector<Ev>, Later> q_;
};

// The Node's executor on virtual time. kill() turns every task still queued into a no-op:
// that is a process dying between two steps.
// `post_delay_us` models work that takes time (the background snapshot writer): its tasks run
// that much later, so the node's loop runs in between.
class SimExecutor final : public Executor {
 public:
  explicit SimExecutor(Scheduler& s, uint64_t post_delay_us = 0) : s_(s), post_delay_us_(post_delay_us) {}
  TimePoint now() const override { return TimePoint(std::chrono::microseconds(s_.now())); }
  void post(Task task) override { s_.at(s_.now() + post_delay_us_, wrap(std::move(task))); }
  void post_at(TimePoint when, Task task) override {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
    s_.at(static_cast<uint64_t>(std::max<int64_t>(us, 0)), wrap(std::move(task)));
  }
  void kill() { *alive_ = false; }

 private:
  std::function<void()> wrap(Task task) {
    return [alive = alive_, task = std::move(task)] {
      if (*alive) task();
    };
  }
  Scheduler& s_;
  uint64_t post_delay_us_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

class NodeSimulation;

// The simulated peer network as one node's Transport.
class SimTransport final : public Transport {
 public:
  SimTransport(NodeSimulation& sim, int index) : sim_(sim), index_(index) {}
  void start(Handler on_message) override { handler_ = std::move(on_message); }
  void add_peer(NodeId, std::string) override {}
  void remove_peer(NodeId) override {}
  void send(std::vector<Message> msgs) override;
  void stop() override { handler_ = nullptr; }
  bool set_snapshots(SnapshotEndpoints e) override {
    endpoints_ = std::move(e);
    return true;
  }
  const SnapshotEndpoints& endpoints() const { return endpoints_; }
  void deliver(Message m) {
    if (handler_) handler_(std::move(m));
  }

 private:
  NodeSimulation& sim_;
  int index_;
  Handler handler_;
  SnapshotEndpoints endpoints_;
};

struct Member {
  NodeId id;
  bool up = false;
  uint64_t incarnation = 0;
  std::unique_ptr<SimFileSystem> fs = std::make_unique<SimFileSystem>();
  std::unique_ptr<DurableLog> log;
  std::unique_ptr<kv::KvStateMachine> sm;
  std::unique_ptr<SimTransport> transport;
  std::unique_ptr<SimExecutor> exec;
  std::unique_ptr<SimExecutor> background;  // the snapshot writer's thread
  std::unique_ptr<Node> node;
  NodeId seen_leader;
  uint64_t restored_before = 0;  // snapshots restored by earlier incarnations
};

struct ClientState {
  int target = 0;
  uint64_t seq = 0;
  bool busy = false;
  uint64_t ok_after_heal = 0;
};

class NodeSimulation {
 public:
  explicit NodeSimulation(const NodeSimOptions& o)
      : opt_(o),
        rng_(o.seed * 0x9E3779B97F4A7C15ULL + 17),
        watches_(std::make_unique<WatchChecker>(o.seed, o.nodes, o.watchers, o.keys, o.plant_watch_skip)) {}

  NodeSimResult run() {
    const int n = opt_.nodes;
    for (int i = 0; i < n; ++i) voters_.push_back(NodeId{static_cast<uint64_t>(i + 1)});
    members_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) members_[i].id = voters_[i];
    clients_.resize(static_cast<size_t>(opt_.clients));
    link_free_.assign(static_cast<size_t>(n * n), 0);
    cut_.assign(static_cast<size_t>(n * n), false);
    // The seed's fault profile.
    drop_ = rng_.chance(0.3) ? 0.0 : 0.01 * static_cast<double>(rng_.below(10));
    delay_min_ = 50 + rng_.below(500);
    delay_max_ = delay_min_ + rng_.below(5000);
    spike_ = rng_.chance(0.5) ? 0.0 : 0.02;
    fault_every_ = 150'000 + rng_.below(700'000);
    snapshot_entries_ = 10 + rng_.below(200);
    timeline("seed {}: {} nodes, {} clients, drop {:.2f}, delay {}-{} us, spike {:.2f}, faults every {} ms, snapshot every {}",
             opt_.seed, n, opt_.clients, drop_, delay_min_, delay_max_, spike_, fault_every_ / 1000, snapshot_entries_);
    try {
      for (int i = 0; i < n; ++i) start_node(i);
      for (int c = 0; c < opt_.clients; ++c) {
        clients_[c].target = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
        sched_.at(rng_.below(20'000), [this, c] { client_next(c); });
      }
      sched_.at(fault_every_, [this] { fault(); });
      sched_.at(50'000, [this] { watch(); });
      sched_.at(30'000, [this] { watch_step(); });
      const uint64_t safety_end = opt_.safety_ms * 1000;
      run_until(safety_end);
      if (result_.ok) heal_everything();
      // Liveness: clients keep going for most of the window, then stop; everything must settle.
      const uint64_t clients_stop = safety_end + opt_.liveness_ms * 1000 * 2 / 3;
      const uint64_t end = safety_end + opt_.liveness_ms * 1000;
      if (result_.ok) run_until(clients_stop);
      stop_clients_ = true;
      if (result_.ok) settle(end);
      if (result_.ok) check_history();
      if (result_.ok) finish_watches();
      shutdown();
    } catch (const std::exception& e) {
      fail(fmt::format("exception: {}", e.what()));
    }
    result_.events = events_;
    result_.trace_hash = hash_ ^ watches_->hash();
    result_.watch_events = watches_->stats().events;
    result_.watch_resumes = watches_->stats().resumes;
    result_.watch_compacted = watches_->stats().compacted;
    return result_;
  }

  // --- network ---------------------------------------------------------------------------------

  void send(int from, std::vector<Message> msgs) {
    const int n = opt_.nodes;
    for (Message& m : msgs) {
      const int to = static_cast<int>(m.to.value) - 1;
      if (to < 0 || to >= n) continue;
      result_.messages++;
      if (m.type == MessageType::kSnap) {
        start_transfer(from, to, std::move(m));
        continue;
      }
      if (cut_[from * n + to] || rng_.chance(drop_)) continue;
      uint64_t delay = delay_min_ + rng_.below(delay_max_ - delay_min_ + 1);
      if (rng_.chance(spike_)) delay += 20'000 + rng_.below(80'000);
      // One link keeps its order (the Transport contract): a message never overtakes.
      uint64_t& free = link_free_[from * n + to];
      const uint64_t t = std::max(sched_.now() + delay, free);
      free = t;
      sched_.at(t, [this, to, m = std::move(m)]() mutable {
        Member& dst = members_[to];
        if (!dst.up) return;
        mix(0xD0, m.from.value, m.to.value, static_cast<uint64_t>(m.type), m.term.value, m.index.value);
        trace("deliver {}->{} {} term {} index {}", m.from.value, m.to.value, to_string(m.type), m.term.value,
              m.index.value);
        dst.transport->deliver(std::move(m));
      });
    }
  }

 private:
  template <typename... Args>
  void trace(fmt::format_string<Args...> f, Args&&... args) {
    events_++;
    if (opt_.trace) *opt_.trace << sched_.now() << " " << fmt::format(f, std::forward<Args>(args)...) << "\n";
  }
  template <typename... Args>
  void timeline(fmt::format_string<Args...> f, Args&&... args) {
    if (opt_.timeline)
      *opt_.timeline << fmt::format("{:>8.3f}s ", static_cast<double>(sched_.now()) / 1e6)
                     << fmt::format(f, std::forward<Args>(args)...) << "\n";
  }
  template <typename... V>
  void mix(V... v) {
    for (uint64_t x : {static_cast<uint64_t>(v)...}) hash_ = (hash_ ^ x) * 0x100000001b3ULL;
    hash_ = (hash_ ^ sched_.now()) * 0x100000001b3ULL;
  }
  void fail(std::string why) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.violation = std::move(why);
    timeline("VIOLATION: {}", result_.violation);
  }

  void run_until(uint64_t until) {
    while (result_.ok && sched_.run_one(until)) {
    }
    if (result_.ok) sched_.run_until(until);  // nothing else due: time still passes
  }

  // --- streamed snapshots ------------------------------------------------------------------------
  // One transfer per (leader, follower) link, stop-and-wait: offer, ack, chunk, ack, ... Each hop
  // may be lost (the connection breaks: the sender notices after a timeout and reconnects with
  // a new offer) or, for chunks, damaged. Frames of a broken connection are never processed
  // (gRPC cancels the call), so the receiver must never see a chunk out of order.

  static constexpr size_t kSimChunkBytes = 64;
  struct Transfer {
    uint64_t gen = 0;   // bumped when a new snapshot replaces the transfer
    uint64_t conn = 0;  // the live connection; events of older ones are ignored
    uint64_t from_incarnation = 0;
    int attempts = 0;
    std::unique_ptr<SnapshotSendSession> session;
  };
  std::map<std::pair<int, int>, Transfer> transfers_;

  void start_transfer(int from, int to, Message m) {
    Member& src = members_[from];
    Transfer& t = transfers_[{from, to}];
    if (t.session && t.from_incarnation == src.incarnation)
      return;  // one transfer at a time: a re-sent (maybe newer) snapshot waits, as in GrpcSender
    std::unique_ptr<SnapshotFileReader> file;
    try {
      file = src.transport->endpoints().open(m.snapshot.metadata);
    } catch (const std::exception&) {
      return;  // compacted away meanwhile: the core asks again
    }
    t.gen++;
    t.attempts = 0;
    t.from_incarnation = src.incarnation;
    t.session = std::make_unique<SnapshotSendSession>(std::move(m), std::move(file), kSimChunkBytes, opt_.snapshot_bug);
    snapshot_connect(from, to);
  }

  bool transfer_live(int from, int to, uint64_t gen, uint64_t conn) {
    auto it = transfers_.find({from, to});
    return it != transfers_.end() && it->second.session && it->second.gen == gen && it->second.conn == conn &&
           members_[from].up && members_[from].incarnation == it->second.from_incarnation;
  }

  // One hop of a snapshot connection: `fn` runs at the far end, unless the hop is lost.
  template <typename Fn>
  void snapshot_hop(int a, int b, int from, int to, uint64_t gen, uint64_t conn, Fn fn) {
    const int n = opt_.nodes;
    if (cut_[a * n + b] || rng_.chance(drop_ + 0.02)) {
      sched_.at(sched_.now() + 30'000, [this, from, to, gen, conn] { snapshot_broken(from, to, gen, conn); });
      return;
    }
    const uint64_t delay = delay_min_ + rng_.below(delay_max_ - delay_min_ + 1);
    sched_.at(sched_.now() + delay, [this, from, to, gen, conn, fn = std::move(fn)]() mutable {
      if (transfer_live(from, to, gen, conn)) fn();
    });
  }

  void snapshot_broken(int from, int to, uint64_t gen, uint64_t conn) {
    if (!transfer_live(from, to, gen, conn)) return;
    Transfer& t = transfers_[{from, to}];
    if (++t.attempts >= 10) {
      t.session.reset();  // given up; the core sends the snapshot again later
      return;
    }
    t.conn++;  // the old connection is dead
    const uint64_t c = t.conn;
    sched_.at(sched_.now() + 20'000 + rng_.below(30'000), [this, from, to, gen, c] {
      if (transfer_live(from, to, gen, c)) snapshot_connect(from, to);
    });
  }

  void snapshot_connect(int from, int to) {
    Transfer& t = transfers_[{from, to}];
    const uint64_t gen = t.gen, conn = ++t.conn;
    result_.snapshot_connections++;
    trace("snapshot offer {}->{} index {}", from + 1, to + 1, t.session->message().snapshot.metadata.index.value);
    const SnapshotOffer offer = t.session->offer();
    snapshot_hop(from, to, from, to, gen, conn, [this, from, to, gen, conn, offer] {
      Member& dst = members_[to];
      if (!dst.up || dst.transport->endpoints().receiver == nullptr) return snapshot_broken(from, to, gen, conn);
      const SnapshotAck ack = dst.transport->endpoints().receiver->offer(members_[from].id, offer);
      snapshot_hop(to, from, from, to, gen, conn, [this, from, to, gen, conn, ack] {
        snapshot_ack(from, to, gen, conn, ack, /*offer=*/true, false);
      });
    });
  }

  void snapshot_ack(int from, int to, uint64_t gen, uint64_t conn, SnapshotAck ack, bool offer, bool corrupted) {
    Transfer& t = transfers_[{from, to}];
    mix(0x5A, static_cast<uint64_t>(from), static_cast<uint64_t>(to), static_cast<uint64_t>(ack.verdict), ack.offset);
    switch (ack.verdict) {
      case SnapshotVerdict::kOk:
        if (offer) {
          if (ack.offset > 0) result_.snapshot_resumes++;
          t.session->resume_at(ack.offset);
        }
        return snapshot_send_next(from, to, gen, conn);
      case SnapshotVerdict::kDone:
        result_.snapshot_transfers++;
        t.session.reset();
        return;
      case SnapshotVerdict::kBadChecksum:
        result_.snapshot_refused++;
        if (!corrupted) return fail(fmt::format("snapshot {}->{}: an intact chunk was refused for its checksum", from + 1, to + 1));
        return snapshot_broken(from, to, gen, conn);  // reconnect and resume
      case SnapshotVerdict::kOutOfOrder:
      case SnapshotVerdict::kBadImage:
        result_.snapshot_refused++;
        return fail(fmt::format("snapshot {}->{}: {} at offset {} (the network never reorders a connection's "
                                "chunks nor damages one unnoticed)", from + 1, to + 1, to_string(ack.verdict), ack.offset));
      case SnapshotVerdict::kOldTerm:
      case SnapshotVerdict::kNoTransfer:
      case SnapshotVerdict::kFailed:
        // A deposed leader, a restarted follower, or another sender took over: drop it.
        result_.snapshot_refused++;
        t.session.reset();
        return;
    }
  }

  void snapshot_send_next(int from, int to, uint64_t gen, uint64_t conn) {
    Transfer& t = transfers_[{from, to}];
    if (t.session->all_sent()) return;  // the last chunk's ack says done
    SnapshotChunk c;
    t.session->next_chunk(&c);
    bool corrupted = false;
    if (rng_.chance(0.01)) {
      c.data[rng_.below(c.data.size())] ^= 0x10;
      corrupted = true;
      result_.snapshot_corrupted_chunks++;
    }
    snapshot_hop(from, to, from, to, gen, conn, [this, from, to, gen, conn, c = std::move(c), corrupted] {
      Member& dst = members_[to];
      if (!dst.up || dst.transport->endpoints().receiver == nullptr) return snapshot_broken(from, to, gen, conn);
      Message deliver;
      const SnapshotAck ack = dst.transport->endpoints().receiver->chunk(members_[from].id, c, &deliver);
      if (corrupted && (ack.verdict == SnapshotVerdict::kOk || ack.verdict == SnapshotVerdict::kDone))
        return fail(fmt::format("snapshot {}->{}: a damaged chunk at offset {} was accepted", from + 1, to + 1, c.offset));
      if (ack.verdict == SnapshotVerdict::kDone) {
        trace("snapshot {}->{} complete, index {}", from + 1, to + 1, deliver.snapshot.metadata.index.value);
        dst.transport->deliver(std::move(deliver));
      }
      snapshot_hop(to, from, from, to, gen, conn, [this, from, to, gen, conn, ack, corrupted] {
        snapshot_ack(from, to, gen, conn, ack, /*offer=*/false, corrupted);
      });
    });
  }

  // --- members ---------------------------------------------------------------------------------

  void start_node(int i) {
    Member& m = members_[i];
    DurableLogOptions lo;
    lo.wal.segment_bytes = 32 << 10;  // small segments: rotation and release happen often
    try {
      m.log = DurableLog::open(*m.fs, "/data", lo);
    } catch (const std::exception& e) {
      fail(fmt::format("n{} cannot restart: {}", m.id.value, e.what()));
      return;
    }
    m.sm = std::make_unique<kv::KvStateMachine>(watches_->store_options(i));
    watches_->attach(i, *m.sm);
    m.transport = std::make_unique<SimTransport>(*this, i);
    m.exec = std::make_unique<SimExecutor>(sched_);
    m.background = std::make_unique<SimExecutor>(sched_, 1'000 + rng_.below(100'000));
    NodeOptions o;
    o.id = m.id;
    o.voters = voters_;
    o.tick_interval = 10ms;
    o.election_ticks = 10;
    o.heartbeat_ticks = 1;
    o.snapshot_entries = snapshot_entries_;
    o.catchup_entries = 1 + snapshot_entries_ / 4;
    o.request_timeout = 1500ms;
    o.seed = opt_.seed * 1000003 + static_cast<uint64_t>(i) * 7919 + m.incarnation + 1;
    o.executor = m.exec.get();
    o.background = m.background.get();
    o.planted_bug = opt_.planted_bug;
    const uint64_t inc = m.incarnation;
    o.on_fatal = [this, i, inc](const std::string& why) {
      // The node stopped itself (fail-stop). The process then exits; a supervisor restarts it.
      timeline("n{} stopped itself: {}", members_[i].id.value, why);
      sched_.at(sched_.now(), [this, i, inc] {
        if (members_[i].up && members_[i].incarnation == inc) crash(i, /*fatal=*/true);
      });
      sched_.at(sched_.now() + 200'000 + rng_.below(500'000), [this, i] { restart(i); });
    };
    m.node = std::make_unique<Node>(std::move(o), *m.log, *m.sm, *m.transport);
    m.node->start();
    m.up = true;
    m.seen_leader = kNoNode;
  }

  void crash(int i, bool fatal = false) {
    Member& m = members_[i];
    if (!m.up) return;
    m.up = false;
    m.incarnation++;
    watches_->detach(i);
    m.exec->kill();
    m.background->kill();  // a snapshot image being written dies with the process
    m.restored_before += m.node->metrics().snapshots_restored.load();
    result_.snapshots_saved += m.node->metrics().snapshots_saved.load();
    result_.snapshots_abandoned += m.node->metrics().snapshots_abandoned.load();
    m.node.reset();  // pending client calls learn kStopped: their outcome is unknown
    m.transport.reset();
    m.sm.reset();
    m.log.reset();
    m.exec.reset();
    m.background.reset();
    m.fs->clear_faults();
    m.fs->crash(rng_.next());
    result_.crashes++;
    mix(0xC0, static_cast<uint64_t>(i));
    trace("crash n{}{}", m.id.value, fatal ? " (fail-stop)" : "");
    timeline("crash    n{}{}", m.id.value, fatal ? " (after its own fail-stop)" : "");
  }

  void restart(int i) {
    if (members_[i].up || !result_.ok) return;
    mix(0xC1, static_cast<uint64_t>(i));
    trace("restart n{}", members_[i].id.value);
    timeline("restart  n{}", members_[i].id.value);
    start_node(i);
  }

  int leader() const {
    for (int i = 0; i < opt_.nodes; ++i) {
      const Member& m = members_[i];
      if (m.up && m.node->status().role == Role::kLeader) return i;
    }
    return -1;
  }

  // Notes leader changes for the timeline (and the trace hash).
  void watch() {
    for (int i = 0; i < opt_.nodes; ++i) {
      Member& m = members_[i];
      if (!m.up) continue;
      const NodeStatus s = m.node->status();
      if (s.role == Role::kLeader && m.seen_leader != m.id) {
        timeline("leader   n{} term {} commit {}", m.id.value, s.term.value, s.commit.value);
        mix(0x1E, m.id.value, s.term.value);
      }
      m.seen_leader = s.role == Role::kLeader ? m.id : s.leader;
    }
    if (result_.ok) sched_.at(sched_.now() + 50'000, [this] { watch(); });
  }

  // --- faults ----------------------------------------------------------------------------------

  void heal_links() {
    std::fill(cut_.begin(), cut_.end(), false);
  }

  void fault() {
    if (!result_.ok || healed_) return;
    const int n = opt_.nodes;
    const uint64_t pick = rng_.below(100);
    if (pick < 20) {
      // Symmetric partition: a random minority (or an even split) on one side.
      heal_links();
      std::vector<bool> side(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) side[i] = rng_.chance(0.5);
      std::string desc;
      for (int a = 0; a < n; ++a) {
        if (side[a]) desc += fmt::format("n{} ", a + 1);
        for (int b = 0; b < n; ++b)
          if (side[a] != side[b]) cut_[a * n + b] = true;
      }
      timeline("partition {{{}}} from the rest", desc);
      mix(0xF0);
    } else if (pick < 35) {
      const int l = leader();
      if (l >= 0) {
        heal_links();
        for (int b = 0; b < n; ++b)
          if (b != l) cut_[l * n + b] = cut_[b * n + l] = true;
        timeline("isolate  leader n{}", l + 1);
        mix(0xF1, static_cast<uint64_t>(l));
      }
    } else if (pick < 45) {
      const int a = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
      const int b = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
      if (a != b) {
        cut_[a * n + b] = true;
        timeline("cut      n{} -> n{} (one way)", a + 1, b + 1);
        mix(0xF2, static_cast<uint64_t>(a), static_cast<uint64_t>(b));
      }
    } else if (pick < 65) {
      const int l = leader();
      const int i = l >= 0 && rng_.chance(0.5) ? l : static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
      if (members_[i].up) {
        crash(i);
        sched_.at(sched_.now() + 100'000 + rng_.below(1'500'000), [this, i] { restart(i); });
      }
    } else if (pick < 72) {
      const int i = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
      if (members_[i].up) {
        const int k = 1 + static_cast<int>(rng_.below(4));
        members_[i].fs->fail_sync_in(k);
        result_.fsync_failures++;
        timeline("disk     n{}: the fsync {} from now will fail", i + 1, k);
        mix(0xF3, static_cast<uint64_t>(i), static_cast<uint64_t>(k));
      }
    } else if (pick < 80) {
      const int l = leader();
      const int to = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
      if (l >= 0 && to != l) {
        members_[l].node->transfer_leadership(members_[to].id);
        timeline("transfer leadership n{} -> n{}", l + 1, to + 1);
        mix(0xF5, static_cast<uint64_t>(l), static_cast<uint64_t>(to));
      }
    } else {
      heal_links();
      timeline("heal     network");
      mix(0xF4);
    }
    sched_.at(sched_.now() + fault_every_ / 2 + rng_.below(fault_every_), [this] { fault(); });
  }

  void heal_everything() {
    healed_ = true;
    heal_time_ = sched_.now();
    heal_links();
    drop_ = 0;
    spike_ = 0;
    for (int i = 0; i < opt_.nodes; ++i) {
      if (members_[i].up) members_[i].fs->clear_faults();
      restart(i);
    }
    timeline("heal     everything (network, disks, crashed nodes)");
    mix(0xFF);
  }

  // --- clients ---------------------------------------------------------------------------------

  void client_next(int c) {
    if (!result_.ok || stop_clients_) return;
    ClientState& cl = clients_[c];
    const int n = opt_.nodes;
    if (!members_[cl.target].up || rng_.chance(0.05)) cl.target = static_cast<int>(rng_.below(static_cast<uint64_t>(n)));
    Member& m = members_[cl.target];
    if (!m.up) {
      sched_.at(sched_.now() + 20'000, [this, c] { client_next(c); });
      return;
    }
    if (rng_.chance(0.02) && last_revision_ > 2) {
      // A compaction (as etcd clients and auto-compaction issue): not part of the checked
      // history (reads are of the latest revision), but it changes history under snapshots
      // being written in the background.
      pb::CompactionRequest req;
      req.set_revision(last_revision_ / 2 + static_cast<int64_t>(rng_.below(static_cast<uint64_t>(last_revision_ / 2))));
      std::string data;
      if (!kv::encode_command(kv::make_command(static_cast<uint64_t>(c) << 40 | ++cl.seq, req), &data).ok())
        throw std::logic_error("encode_command refused a compaction");
      cl.busy = true;
      trace("c{} compact at {} via n{}", c, req.revision(), cl.target + 1);
      m.node->propose(std::move(data), [this, c](CommandResult r) {
        mix(0xA5, static_cast<uint64_t>(c), static_cast<uint64_t>(r.error));
        if (!r.ok()) redirect(c, r);
        // An error result (already compacted, future revision) is fine: nothing to check.
        next_later(c);
      });
      return;
    }
    KvOp op;
    op.client = c;
    op.key = fmt::format("k{}", rng_.below(static_cast<uint64_t>(opt_.keys)));
    op.call = sched_.now();
    const uint64_t pick = rng_.below(100);
    const size_t h = history_.size();
    const uint64_t request_id = static_cast<uint64_t>(c) << 40 | ++cl.seq;
    cl.busy = true;
    const int target = cl.target;
    if (pick < 40) {
      op.kind = KvOp::Kind::kGet;
      history_.push_back(op);
      removed_.push_back(false);
      trace("c{} get {} at n{}", c, op.key, target + 1);
      m.node->read_index([this, c, h, target](CommandResult r) { on_read(c, h, target, r); });
      return;
    }
    kvpb::KvCommand cmd;
    if (pick < 75) {
      op.kind = KvOp::Kind::kPut;
      op.value = fmt::format("c{}-{}", c, cl.seq);
      pb::PutRequest req;
      req.set_key(op.key);
      req.set_value(op.value);
      cmd = kv::make_command(request_id, req);
    } else if (pick < 85) {
      op.kind = KvOp::Kind::kDelete;
      pb::DeleteRangeRequest req;
      req.set_key(op.key);
      cmd = kv::make_command(request_id, req);
    } else {
      op.kind = KvOp::Kind::kCas;
      op.value = fmt::format("c{}-{}", c, cl.seq);
      // Compare against a recent value of the key (what a client would have read).
      const auto last = last_written_.find(op.key);
      if (last != last_written_.end() && rng_.chance(0.7)) op.expect = last->second;
      pb::TxnRequest req;
      pb::Compare* cmp = req.add_compare();
      cmp->set_key(op.key);
      cmp->set_result(pb::Compare::EQUAL);
      if (op.expect) {
        cmp->set_target(pb::Compare::VALUE);
        cmp->set_value(*op.expect);
      } else {
        cmp->set_target(pb::Compare::VERSION);
        cmp->set_version(0);
      }
      req.add_success()->mutable_request_put()->set_key(op.key);
      req.mutable_success(0)->mutable_request_put()->set_value(op.value);
      cmd = kv::make_command(request_id, req);
    }
    if (op.kind != KvOp::Kind::kDelete) last_written_[op.key] = op.value;
    std::string data;
    const kv::Status enc = kv::encode_command(cmd, &data);
    if (!enc.ok()) throw std::logic_error("encode_command refused a small command");
    history_.push_back(op);
    removed_.push_back(false);
    trace("c{} {} at n{}", c, to_string(op), target + 1);
    m.node->propose(std::move(data), [this, c, h](CommandResult r) { on_write(c, h, std::move(r)); });
  }

  void next_later(int c) {
    clients_[c].busy = false;
    sched_.at(sched_.now() + rng_.below(10'000), [this, c] { client_next(c); });
  }

  void redirect(int c, const CommandResult& r) {
    ClientState& cl = clients_[c];
    if (r.leader != kNoNode && r.leader.value <= static_cast<uint64_t>(opt_.nodes))
      cl.target = static_cast<int>(r.leader.value) - 1;
    else
      cl.target = static_cast<int>(rng_.below(static_cast<uint64_t>(opt_.nodes)));
  }

  void on_write(int c, size_t h, CommandResult r) {
    KvOp& op = history_[h];
    mix(0xA0, static_cast<uint64_t>(c), static_cast<uint64_t>(r.error), r.index.value);
    switch (r.error) {
      case NodeError::kOk: {
        kvpb::KvResult res;
        if (!kv::decode_result(r.value, &res)) return fail(fmt::format("c{}: undecodable KV result for {}", c, to_string(op)));
        const kv::Status st = kv::result_status(res);
        if (!st.ok()) return fail(fmt::format("c{}: KV error for {}: {}", c, to_string(op), st.message));
        op.ret = sched_.now();
        last_revision_ = std::max(last_revision_, res.revision());
        if (op.kind == KvOp::Kind::kCas) op.cas_ok = res.txn().succeeded();
        if (healed_) clients_[c].ok_after_heal++;
        trace("c{} done {} (index {})", c, to_string(op), r.index.value);
        break;
      }
      case NodeError::kNotLeader:
      case NodeError::kNoLeader:
      case NodeError::kDropped:
      case NodeError::kTooLarge:
      case NodeError::kLeadershipLost:
        // Definitely without effect (kLeadershipLost: its log slot now holds another entry).
        removed_[h] = true;
        result_.failed++;
        trace("c{} refused {}: {}", c, to_string(op), to_string(r.error));
        redirect(c, r);
        break;
      case NodeError::kTimeout:
      case NodeError::kStopped:
        result_.indeterminate++;
        trace("c{} unknown {}: {}", c, to_string(op), to_string(r.error));
        redirect(c, r);
        break;
    }
    next_later(c);
  }

  void on_read(int c, size_t h, int target, const CommandResult& r) {
    KvOp& op = history_[h];
    mix(0xB0, static_cast<uint64_t>(c), static_cast<uint64_t>(r.error), r.index.value);
    if (!r.ok()) {
      removed_[h] = true;  // a read that failed observed nothing
      result_.failed++;
      trace("c{} read failed: {}", c, to_string(r.error));
      redirect(c, r);
      return next_later(c);
    }
    // As balsad does: after the barrier, read the local state machine.
    Member& m = members_[target];
    pb::RangeRequest req;
    req.set_key(op.key);
    pb::RangeResponse resp;
    const kv::Result res = m.sm->range(req, &resp);
    if (!res.ok()) return fail(fmt::format("c{}: range failed: {}", c, res.status.message));
    if (resp.kvs_size() > 0) op.got = resp.kvs(0).value();
    op.ret = sched_.now();
    if (healed_) clients_[c].ok_after_heal++;
    trace("c{} done {}", c, to_string(op));
    next_later(c);
  }

  // --- watchers (sim/watch_checker.h) --------------------------------------------------------

  std::vector<bool> members_up() const {
    std::vector<bool> up;
    for (const Member& m : members_) up.push_back(m.up);
    return up;
  }
  void watch_step() {
    if (!result_.ok) return;
    watches_->step(sched_.now(), members_up());
    if (!watches_->ok()) return fail(watches_->violation());
    sched_.at(sched_.now() + 5'000, [this] { watch_step(); });
  }
  void finish_watches() {
    watches_->finish(members_up(), members_[0].sm->revisions().current);
    if (!watches_->ok()) fail(watches_->violation());
  }

  // --- the end ---------------------------------------------------------------------------------

  // Runs until every member is up, agrees on a leader, and all have applied the same index with
  // the same HashKV; fails if that does not happen by `deadline`.
  void settle(uint64_t deadline) {
    std::string why;
    while (result_.ok) {
      why = converged();
      if (why.empty()) break;
      if (sched_.now() >= deadline) return fail(fmt::format("no convergence {} ms after healing: {}",
                                                            (sched_.now() - heal_time_) / 1000, why));
      run_until(sched_.now() + 50'000);
    }
    if (!result_.ok) return;
    for (int c = 0; c < opt_.clients; ++c) {
      if (clients_[c].busy) return fail(fmt::format("c{}: an operation never completed (no callback)", c));
      if (clients_[c].ok_after_heal == 0)
        return fail(fmt::format("c{}: no operation succeeded in {} ms after healing", c,
                                (sched_.now() - heal_time_) / 1000));
    }
    timeline("converged: every member applied the same log, HashKV equal");
  }

  std::string converged() {
    const int l = leader();
    if (l < 0) return "no leader";
    for (const ClientState& cl : clients_)
      if (cl.busy) return "client operations pending";
    const NodeStatus ls = members_[l].node->status();
    int64_t hash_rev = -1;
    uint32_t hash = 0;
    for (int i = 0; i < opt_.nodes; ++i) {
      Member& m = members_[i];
      if (!m.up) return fmt::format("n{} down", i + 1);
      const NodeStatus s = m.node->status();
      if (s.leader != members_[l].id) return fmt::format("n{} follows n{}", i + 1, s.leader.value);
      if (s.applied != ls.last_index)
        return fmt::format("n{} applied {} of the leader's {}", i + 1, s.applied.value, ls.last_index.value);
      pb::HashKVResponse resp;
      const kv::Result r = m.sm->hash_kv(0, &resp);
      if (!r.ok()) return fmt::format("n{} HashKV failed: {}", i + 1, r.status.message);
      if (hash_rev < 0) {
        hash_rev = r.revision;
        hash = resp.hash();
      } else if (r.revision != hash_rev || resp.hash() != hash) {
        fail(fmt::format("state machines diverged at applied index {}: n1.. revision {} hash {} vs n{} revision {} hash {}",
                         s.applied.value, hash_rev, hash, i + 1, r.revision, resp.hash()));
        return "diverged";
      }
    }
    return {};
  }

  void check_history() {
    std::vector<KvOp> h;
    for (size_t k = 0; k < history_.size(); ++k)
      if (!removed_[k]) h.push_back(history_[k]);
    const LinearizabilityResult r = check_linearizable(h);
    result_.ops = h.size();
    result_.check_steps = r.steps;
    if (r.ok) return;
    if (r.exhausted) return fail(fmt::format("linearizability check exhausted its budget on key {}", r.key));
    fail(fmt::format("history of key {} is not linearizable:\n{}", r.key, r.explanation));
  }

  void shutdown() {
    for (Member& m : members_) {
      if (!m.up) continue;
      result_.snapshots_restored += m.node->metrics().snapshots_restored.load();
      result_.snapshots_saved += m.node->metrics().snapshots_saved.load();
      result_.snapshots_abandoned += m.node->metrics().snapshots_abandoned.load();
      m.exec->kill();
      m.background->kill();
      m.node.reset();
      m.up = false;
    }
    for (Member& m : members_) result_.snapshots_restored += m.restored_before;
  }

  friend class SimTransport;

  NodeSimOptions opt_;
  Rng rng_;
  Scheduler sched_;
  NodeSimResult result_;
  std::vector<NodeId> voters_;
  std::vector<Member> members_;
  std::unique_ptr<WatchChecker> watches_;  // after members_: destroyed first (its hubs read their stores)
  std::vector<ClientState> clients_;
  std::vector<KvOp> history_;
  std::vector<bool> removed_;
  std::map<std::string, std::string> last_written_;
  int64_t last_revision_ = 0;  // the newest store revision a client saw
  std::vector<uint64_t> link_free_;
  std::vector<bool> cut_;
  double drop_ = 0, spike_ = 0;
  uint64_t delay_min_ = 0, delay_max_ = 0, fault_every_ = 0, snapshot_entries_ = 0;
  bool healed_ = false, stop_clients_ = false;
  uint64_t heal_time_ = 0;
  uint64_t events_ = 0;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

void SimTransport::send(std::vector<Message> msgs) { sim_.send(index_, std::move(msgs)); }

}  // namespace

NodeSimResult run_node_simulation(const NodeSimOptions& options) {
  set_assertion_handler(throw_on_assert);
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);  // the timeline says what matters; node logs would flood
  NodeSimResult r;
  {
    NodeSimulation sim(options);
    r = sim.run();
  }
  spdlog::set_level(level);
  set_assertion_handler(nullptr);
  return r;
}

}  // namespace balsa::sim
