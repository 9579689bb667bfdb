// Node: the runtime that drives the Raft core with real storage, a transport and a state
// machine. One write travels one path:
//
//   propose(cmd) --queue--> loop thread: RawNode::propose (or forward to the leader)
//     -> Ready: send appends to followers  ||  persist entries + hard state (WAL, one fsync)
//     -> send acks that promised durability -> commit -> StateMachine::apply (batch)
//     -> the proposer's callback gets the state machine's result.
//
// Threads: all of the node's work runs as tasks on one serial Executor (runtime/executor.h):
// by default a ThreadExecutor the node owns (one "loop" thread), in the simulator an executor
// on virtual time. Those tasks own the RawNode, the DurableLog and the StateMachine's apply,
// and tick the core on the executor's clock; the transport's threads and callers only enqueue.
// Public methods are thread-safe and never block on I/O. Callbacks run on the executor: they
// must be quick (complete an RPC, fulfil a promise), never block.
//
// Proposals carry an envelope (origin node, request number), so a proposal forwarded from a
// follower completes on the follower when it applies the entry. A proposal that cannot finish
// gets a clear error: not leader (with a hint), timeout, leadership lost, dropped, stopped.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/raw_node.h"
#include "runtime/executor.h"
#include "runtime/metrics.h"
#include "runtime/state_machine.h"
#include "storage/durable_log.h"
#include "transport/snapshot_stream.h"
#include "transport/transport.h"

namespace balsa {

enum class NodeError : uint8_t {
  kOk = 0,
  kNotLeader,       // refused: this node is not the leader and cannot forward (hint in leader)
  kNoLeader,        // no leader is known right now (an election is under way)
  kTimeout,         // outcome unknown: not seen to apply by the deadline, or a snapshot from the
                    // leader replaced the log where it was; it may have applied or may still apply
  kLeadershipLost,  // the entry was overwritten by a new leader: it did not apply
  kDropped,         // refused by the leader (transfer in progress, too much uncommitted data)
  kTooLarge,        // bigger than the maximum request size
  kStopped,         // the node is shutting down or failed
};
const char* to_string(NodeError e);

struct CommandResult {
  NodeError error = NodeError::kOk;
  std::string value;  // the state machine's result (propose) or empty (read_index)
  NodeId leader;      // the leader as this node knows it
  LogIndex index;     // where the command applied / the read index served
  bool ok() const { return error == NodeError::kOk; }
};
using CommandCallback = std::function<void(CommandResult)>;

// Deliberate defects, for showing that the simulator's checkers catch them. Never set in
// production: each one breaks a guarantee.
enum class NodeBug : uint8_t {
  kNone = 0,
  kStaleReads,  // read_index completes at once from local state, with no quorum round
};

struct NodeOptions {
  NodeId id;
  std::vector<NodeId> voters;  // the initial cluster (used when the data dir is new)
  std::chrono::milliseconds tick_interval{100};
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  uint64_t snapshot_entries = 10'000;  // applied entries between snapshots (etcd --snapshot-count)
  // Members take their snapshots at staggered points (offsets spread evenly over this fraction
  // of snapshot_entries by rank among the voters), so they do not all pause to take their
  // state's image at the same index: the leader keeps a quorum of responsive followers.
  double snapshot_stagger = 0.5;
  uint64_t catchup_entries = 5'000;    // entries kept after a snapshot for slow followers
  uint64_t max_request_bytes = 1'572'864 + 1024;
  uint64_t max_uncommitted_bytes = 256ull << 20;
  // Backpressure: proposals accepted by propose() and not yet finished (queued, in the log,
  // waiting to apply), in command bytes. Beyond it propose() fails at once with kDropped
  // (balsad: "etcdserver: too many requests"), so a burst cannot grow memory without bound.
  // A single proposal is always accepted when nothing is pending.
  uint64_t max_pending_bytes = 64ull << 20;
  uint64_t max_msg_bytes = 1 << 20;
  size_t max_inflight_msgs = 512;
  std::chrono::milliseconds request_timeout{7000};
  uint64_t seed = 0;  // election randomization; 0 = from the node id and the clock
  // Called (on the loop thread) when storage fails: the node has stopped. Default: log, abort.
  std::function<void(const std::string&)> on_fatal;
  // Where the node's work runs. Null: the node owns a ThreadExecutor (one thread, steady
  // clock). Otherwise it must be serial (executor.h), outlive the node, and never run a task
  // of this node concurrently with its destructor (the simulator's executor is one thread).
  Executor* executor = nullptr;
  // Where snapshot images are written and synced when the StateMachine offers snapshot_image().
  // Null: the node owns a ThreadExecutor for it. Same rules as `executor`.
  Executor* background = nullptr;
  NodeBug planted_bug = NodeBug::kNone;
};

struct NodeStatus {
  NodeId id;
  NodeId leader;
  Role role = Role::kFollower;
  Term term;
  LogIndex commit;
  LogIndex applied;
  LogIndex first_index;
  LogIndex last_index;
  std::vector<Status::Peer> progress;  // on the leader
  bool stopped = false;
};

class Node {
 public:
  Node(NodeOptions options, DurableLog& log, StateMachine& sm, Transport& transport);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Starts the executor (if owned), the ticker and the transport.
  void start();
  // Stops accepting work, fails everything pending with kStopped, stops the owned executor
  // (joining its thread) and the transport. Idempotent. With an external executor, tasks
  // still queued for this node become no-ops.
  void stop();

  // Replicates a command; `done` gets the state machine's result once applied here.
  void propose(std::string command, CommandCallback done);
  // Linearizable read barrier (ReadIndex): `done` runs once this node's state machine has
  // applied everything committed when the read arrived; the caller then reads locally.
  void read_index(CommandCallback done);
  void transfer_leadership(NodeId target);

  NodeStatus status() const;
  // Incoming streamed snapshots (offers, resumes, refusals by reason); zero before start().
  SnapshotReceiverStats snapshot_receiver_stats() const {
    return snapshot_receiver_ ? snapshot_receiver_->stats() : SnapshotReceiverStats{};
  }
  const NodeMetrics& metrics() const { return metrics_; }

 private:
  using TimePoint = Executor::TimePoint;
  struct Pending {
    CommandCallback done;
    TimePoint deadline;
    LogIndex index;  // where it was appended (0 while unknown: forwarded)
    Term term;
    TimePoint started{};  // when propose() was called (for balsa_proposal_duration_seconds)
  };
  // One round-trip sample in flight per peer (metrics only).
  struct RttProbe {
    bool active = false;
    uint64_t key = 0;  // append: the last index sent; vote: the term asked for
    TimePoint sent{};
  };
  struct Input;

  void drain();
  void on_tick();
  void run_guarded(const std::function<void()>& body);
  void process_readies();
  void handle_inputs(std::vector<Input>& inputs);
  void handle_ready();
  void apply(std::vector<Entry>& committed);
  void maybe_snapshot();
  void snapshot_written(LogIndex index, const std::string& error, bool abandoned);
  void snapshot_recorded(LogIndex index, std::chrono::steady_clock::time_point started, double loop_ms);
  void expire(TimePoint now);
  void fail_all(NodeError error);
  void fatal(const std::string& why);
  void publish_status();
  void observe_outgoing(const std::vector<Message>& msgs);
  void observe_incoming(const Message& m);
  void enqueue(Input in);

  NodeOptions opt_;
  DurableLog& log_;
  StateMachine& sm_;
  Transport& transport_;
  std::unique_ptr<RawNode> raw_;
  std::unique_ptr<SnapshotReceiver> snapshot_receiver_;  // set by start(); outlives the transport's stop()

  std::unique_ptr<ThreadExecutor> own_executor_;
  Executor* exec_;
  std::unique_ptr<ThreadExecutor> own_background_;
  Executor* bg_;
  // Tasks check it before touching the node: false once stop() began.
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);

  std::mutex mu_;  // guards inbox_, drain_posted_, stopping_
  std::vector<Input> inbox_;
  bool drain_posted_ = false;
  bool stopping_ = false;
  NodeStatus status_;
  mutable std::mutex status_mu_;

  std::atomic<bool> started_{false};
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> pending_bytes_{0};  // see NodeOptions::max_pending_bytes

  // Executor-task state.
  TimePoint next_tick_;
  uint64_t next_request_ = 1;
  std::unordered_map<uint64_t, Pending> proposals_;  // by request number
  std::unordered_map<std::string, std::vector<Pending>> reads_;  // by read context (a batch)
  std::vector<std::pair<LogIndex, Pending>> reads_waiting_apply_;
  std::unordered_map<NodeId, RttProbe> append_probes_;
  std::unordered_map<NodeId, RttProbe> vote_probes_;
  LogIndex last_snapshot_;
  // The snapshot being written on bg_ (at most one). The job holds only a weak reference, so
  // dropping this discards it.
  std::shared_ptr<SnapshotWriter> snapshot_writer_;
  std::chrono::steady_clock::time_point snapshot_started_;
  double snapshot_loop_ms_ = 0;  // how long the loop paused to take the image
  bool snapshot_on_loop_next_ = false;  // the last background image was abandoned
  uint64_t snapshot_offset_ = 0; // this member's stagger (entries)
  NodeId last_leader_;
  NodeMetrics metrics_;
};

}  // namespace balsa
