#include "runtime/node.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/codec.h"
#include "storage/errors.h"

namespace balsa {

const char* to_string(NodeError e) {
  switch (e) {
    case NodeError::kOk: return "ok";
    case NodeError::kNotLeader: return "not leader";
    case NodeError::kNoLeader: return "no leader";
    case NodeError::kTimeout: return "timed out";
    case NodeError::kLeadershipLost: return "leadership lost";
    case NodeError::kDropped: return "dropped by leader";
    case NodeError::kTooLarge: return "request too large";
    case NodeError::kStopped: return "node stopped";
  }
  return "?";
}

struct Node::Input {
  enum class Kind : uint8_t { kMessage, kPropose, kRead, kTransfer, kUnreachable, kSnapshotSent };
  Kind kind;
  Message msg;
  std::string command;
  CommandCallback done;
  NodeId target;
  bool ok = false;
  Executor::TimePoint at{};  // kPropose: when propose() was called
};

namespace {
// Metric durations measure real work, so they read the steady clock; everything that affects
// behaviour (deadlines, ticks) reads the executor's clock.
using Clock = std::chrono::steady_clock;

// The envelope around a user command: origin node and request number, so the node that took
// the request (maybe a follower that forwarded it) recognizes it when it applies.
std::string wrap(NodeId origin, uint64_t request, std::string_view command) {
  codec::Writer w;
  w.u64(origin.value);
  w.u64(request);
  w.out().append(command);
  return w.take();
}

struct Envelope {
  NodeId origin;
  uint64_t request = 0;
  std::string_view payload;
};

bool unwrap(std::string_view data, Envelope* env) {
  codec::Reader r(data);
  uint64_t origin, request;
  if (!r.u64(&origin) || !r.u64(&request)) return false;
  // The reader consumed a prefix; what is left is the payload.
  size_t used = 0;
  {
    codec::Writer w;
    w.u64(origin);
    w.u64(request);
    used = w.out().size();
  }
  env->origin = NodeId{origin};
  env->request = request;
  env->payload = data.substr(used);
  return true;
}
}  // namespace

Node::Node(NodeOptions options, DurableLog& log, StateMachine& sm, Transport& transport)
    : opt_(std::move(options)), log_(log), sm_(sm), transport_(transport) {
  if (opt_.executor == nullptr) own_executor_ = std::make_unique<ThreadExecutor>();
  exec_ = opt_.executor != nullptr ? opt_.executor : own_executor_.get();
  if (opt_.background == nullptr) own_background_ = std::make_unique<ThreadExecutor>();
  bg_ = opt_.background != nullptr ? opt_.background : own_background_.get();
  // Restart: the state machine starts from the latest snapshot; the core then hands out the
  // committed entries after it again.
  const Snapshot snap = log_.snapshot();
  if (!snap.empty() && sm_.applied_index() < snap.metadata.index) {
    StringSource src(snap.data);
    sm_.restore_snapshot(src, snap.metadata.index);
  }
  last_snapshot_ = snap.metadata.index;
  if (opt_.snapshot_stagger > 0 && opt_.snapshot_entries > 1) {
    // Spread by this member's rank among the voters (evenly apart), else by a hash of its id.
    const uint64_t span = static_cast<uint64_t>(static_cast<double>(opt_.snapshot_entries) *
                                                std::min(opt_.snapshot_stagger, 1.0));
    std::vector<NodeId> voters = opt_.voters;
    std::sort(voters.begin(), voters.end());
    const auto it = std::find(voters.begin(), voters.end(), opt_.id);
    if (span == 0) {
      snapshot_offset_ = 0;
    } else if (it != voters.end()) {
      snapshot_offset_ = span * static_cast<uint64_t>(it - voters.begin()) / voters.size();
    } else {
      snapshot_offset_ = ((opt_.id.value ^ (opt_.id.value >> 29)) * 0xbf58476d1ce4e5b9ULL >> 32) % span;
    }
  }
  Config cfg;
  cfg.id = opt_.id;
  cfg.voters = opt_.voters;
  cfg.election_ticks = opt_.election_ticks;
  cfg.heartbeat_ticks = opt_.heartbeat_ticks;
  cfg.pre_vote = opt_.pre_vote;
  cfg.check_quorum = opt_.check_quorum;
  cfg.applied = std::max(snap.metadata.index, sm_.applied_index());
  cfg.max_msg_bytes = opt_.max_msg_bytes;
  cfg.max_inflight_msgs = opt_.max_inflight_msgs;
  cfg.max_uncommitted_bytes = opt_.max_uncommitted_bytes;
  cfg.forward_proposals = true;
  cfg.seed = opt_.seed != 0 ? opt_.seed
                            : opt_.id.value * 0x9e3779b97f4a7c15ULL ^
                                  static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  raw_ = std::make_unique<RawNode>(cfg, &log_);
  status_.id = opt_.id;
}

Node::~Node() { stop(); }

void Node::start() {
  if (started_.exchange(true)) return;
  transport_.set_feedback(DeliveryFeedback{
      [this](NodeId peer) { enqueue(Input{Input::Kind::kUnreachable, {}, {}, {}, peer}); },
      [this](NodeId peer, bool ok) { enqueue(Input{Input::Kind::kSnapshotSent, {}, {}, {}, peer, ok}); },
  });
  transport_.start([this](Message m) {
    Input in{Input::Kind::kMessage, std::move(m), {}, {}, {}};
    enqueue(std::move(in));
  });
  if (own_executor_) own_executor_->start();
  if (own_background_) own_background_->start();
  next_tick_ = exec_->now() + opt_.tick_interval;
  exec_->post_at(next_tick_, [this, alive = alive_] {
    if (*alive) on_tick();
  });
}

void Node::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  // With the owned executor, stop() joins its thread: no task runs after this line. With an
  // external one, the caller guarantees no task of ours runs concurrently (executor.h).
  if (own_executor_) own_executor_->stop();
  alive_->store(false);
  // A snapshot image being written finishes (its job holds the writer); one not started is
  // dropped. Either way it is never recorded: the next start uses the WAL's last snapshot.
  if (own_background_) own_background_->stop();
  snapshot_writer_.reset();
  transport_.stop();
  // Work that arrived but was never drained.
  std::vector<Input> left;
  {
    std::lock_guard lk(mu_);
    left.swap(inbox_);
  }
  for (Input& in : left)
    if (in.done) in.done(CommandResult{NodeError::kStopped, {}, {}, {}});
  fail_all(NodeError::kStopped);
}

void Node::enqueue(Input in) {
  {
    std::lock_guard lk(mu_);
    if (!stopping_) {
      inbox_.push_back(std::move(in));
      if (!drain_posted_) {
        // One drain task takes everything that queued meanwhile: proposals batch naturally.
        drain_posted_ = true;
        exec_->post([this, alive = alive_] {
          if (*alive) drain();
        });
      }
      return;
    }
  }
  if (in.done) in.done(CommandResult{NodeError::kStopped, {}, {}, {}});
}

void Node::propose(std::string command, CommandCallback done) {
  if (command.size() > opt_.max_request_bytes) {
    done(CommandResult{NodeError::kTooLarge, {}, {}, {}});
    return;
  }
  if (failed_) {
    done(CommandResult{NodeError::kStopped, {}, {}, {}});
    return;
  }
  // Reserve the bytes; they are released when the proposal finishes, whatever the outcome.
  const uint64_t bytes = command.size() + 1;  // an empty command still counts
  const uint64_t before = pending_bytes_.fetch_add(bytes);
  if (before != 0 && before + bytes > opt_.max_pending_bytes) {
    pending_bytes_.fetch_sub(bytes);
    metrics_.proposals_failed++;
    done(CommandResult{NodeError::kDropped, {}, {}, {}});
    return;
  }
  CommandCallback release = [this, bytes, done = std::move(done)](CommandResult r) {
    pending_bytes_.fetch_sub(bytes);
    done(std::move(r));
  };
  enqueue(Input{Input::Kind::kPropose, {}, std::move(command), std::move(release), {}, false, exec_->now()});
}

void Node::read_index(CommandCallback done) {
  if (failed_) {
    done(CommandResult{NodeError::kStopped, {}, {}, {}});
    return;
  }
  enqueue(Input{Input::Kind::kRead, {}, {}, std::move(done), {}});
}

void Node::transfer_leadership(NodeId target) {
  enqueue(Input{Input::Kind::kTransfer, {}, {}, {}, target});
}

NodeStatus Node::status() const {
  std::lock_guard lk(status_mu_);
  return status_;
}

// ---------------------------------------------------------------------------------------------
// The loop thread

void Node::run_guarded(const std::function<void()>& body) {
  try {
    body();
    process_readies();
  } catch (const StorageFatalError& e) {
    fatal(e.what());
  } catch (const IoError& e) {
    fatal(e.what());
  }
}

void Node::drain() {
  std::vector<Input> inputs;
  {
    std::lock_guard lk(mu_);
    drain_posted_ = false;
    if (stopping_) return;
    inputs.swap(inbox_);
  }
  if (failed_) {
    for (Input& in : inputs)
      if (in.done) in.done(CommandResult{NodeError::kStopped, {}, {}, {}});
    return;
  }
  run_guarded([&] { handle_inputs(inputs); });
}

void Node::on_tick() {
  const TimePoint now = exec_->now();
  next_tick_ += opt_.tick_interval;
  if (next_tick_ <= now) next_tick_ = now + opt_.tick_interval;  // we fell behind: don't burst
  exec_->post_at(next_tick_, [this, alive = alive_] {
    if (*alive) on_tick();
  });
  if (failed_) return;
  run_guarded([&] {
    raw_->tick();
    expire(now);
  });
}

void Node::process_readies() {
  while (raw_->has_ready()) handle_ready();
  publish_status();
}

void Node::handle_inputs(std::vector<Input>& inputs) {
  // Proposals that arrive together go to the core as one batch: one append, one broadcast.
  std::vector<std::string> batch;
  std::vector<uint64_t> batch_ids;
  std::vector<CommandCallback> read_batch;
  const auto deadline = exec_->now() + opt_.request_timeout;
  const uint64_t refused_before = raw_->stats().invalid + raw_->stats().non_member + raw_->stats().stale_term;
  for (Input& in : inputs) {
    switch (in.kind) {
      case Input::Kind::kMessage:
        observe_incoming(in.msg);
        raw_->step(in.msg);
        break;
      case Input::Kind::kPropose: {
        const uint64_t id = next_request_++;
        batch.push_back(wrap(opt_.id, id, in.command));
        batch_ids.push_back(id);
        proposals_.emplace(id, Pending{std::move(in.done), deadline, {}, {}, in.at});
        break;
      }
      case Input::Kind::kRead:
        read_batch.push_back(std::move(in.done));
        break;
      case Input::Kind::kTransfer:
        raw_->transfer_leadership(in.target);
        break;
      case Input::Kind::kUnreachable:
        raw_->report_unreachable(in.target);
        break;
      case Input::Kind::kSnapshotSent:
        raw_->report_snapshot(in.target, in.ok);
        break;
    }
  }
  metrics_.messages_refused += raw_->stats().invalid + raw_->stats().non_member + raw_->stats().stale_term -
                               refused_before;
  if (!batch.empty()) {
    const ProposeResult r = raw_->propose(std::move(batch));
    for (size_t k = 0; k < batch_ids.size(); ++k) {
      auto it = proposals_.find(batch_ids[k]);
      switch (r.status) {
        case ProposeStatus::kAppended:
          it->second.index = r.first_index + k;
          it->second.term = r.term;
          break;
        case ProposeStatus::kForwarded:
          break;  // completes when applied here (the envelope names us), or times out
        case ProposeStatus::kNotLeader:
        case ProposeStatus::kDropped: {
          const NodeError err = r.status == ProposeStatus::kDropped ? NodeError::kDropped
                                : r.leader == kNoNode              ? NodeError::kNoLeader
                                                                   : NodeError::kNotLeader;
          auto done = std::move(it->second.done);
          proposals_.erase(it);
          metrics_.proposals_failed++;
          done(CommandResult{err, {}, r.leader, {}});
          break;
        }
      }
    }
  }
  if (!read_batch.empty() && opt_.planted_bug == NodeBug::kStaleReads) {
    // Planted defect: whatever this node has applied is served as if it were current.
    const LogIndex applied = raw_->raft().log().applied();
    for (auto& done : read_batch) done(CommandResult{NodeError::kOk, {}, raw_->raft().leader(), applied});
    read_batch.clear();
  }
  if (!read_batch.empty()) {
    // All reads that arrived together share one ReadIndex round.
    const std::string ctx = "r" + std::to_string(next_request_++);
    if (raw_->read_index(ctx)) {
      auto& waiting = reads_[ctx];
      for (auto& done : read_batch) waiting.push_back(Pending{std::move(done), deadline, {}, {}});
    } else {
      for (auto& done : read_batch) done(CommandResult{NodeError::kNoLeader, {}, kNoNode, {}});
    }
  }
  metrics_.proposals_pending = proposals_.size();
}

void Node::handle_ready() {
  Ready rd = raw_->ready();
  if (rd.soft_state) {
    const NodeId leader = rd.soft_state->leader;
    if (leader != last_leader_) {
      if (leader != kNoNode) {
        metrics_.leader_changes++;
        spdlog::info("raft: node {:x} sees leader {:x} at term {} (role {})", opt_.id.value, leader.value,
                     raw_->raft().term().value, to_string(rd.soft_state->role));
      } else {
        spdlog::info("raft: node {:x} lost leader {:x} at term {}", opt_.id.value, last_leader_.value,
                     raw_->raft().term().value);
      }
      // Reads sent to the old leader died with its term: fail them so clients retry at once.
      for (auto& [ctx, waiting] : reads_)
        for (Pending& p : waiting) p.done(CommandResult{NodeError::kLeadershipLost, {}, leader, {}});
      reads_.clear();
      last_leader_ = leader;
    }
    metrics_.has_leader = leader != kNoNode;
    metrics_.is_leader = rd.soft_state->role == Role::kLeader;
  }
  // The leader's appends go out while its own disk write runs (thesis §10.2.1).
  if (!rd.messages.empty()) {
    observe_outgoing(rd.messages);
    transport_.send(std::move(rd.messages));
  }
  if (rd.snapshot) {
    log_.apply_snapshot(*rd.snapshot);
    StringSource src(rd.snapshot->data);
    sm_.restore_snapshot(src, rd.snapshot->metadata.index);
    last_snapshot_ = rd.snapshot->metadata.index;
    metrics_.snapshots_restored++;
    // Proposals appended here at or below the snapshot never pass through apply(): the snapshot
    // may or may not contain them, so their outcome is unknown (found by balsa-sim-node: these
    // were once reported as kLeadershipLost although the new leader had committed them).
    for (auto it = proposals_.begin(); it != proposals_.end();) {
      Pending& p = it->second;
      if (p.index.value == 0 || p.index > rd.snapshot->metadata.index) {
        ++it;
        continue;
      }
      metrics_.proposals_failed++;
      p.done(CommandResult{NodeError::kTimeout, {}, raw_->raft().leader(), p.index});
      it = proposals_.erase(it);
    }
    spdlog::info("raft: node {:x} restored snapshot at index {}", opt_.id.value, rd.snapshot->metadata.index.value);
  }
  if (!rd.entries.empty() || rd.hard_state) {
    const auto t0 = Clock::now();
    log_.persist(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries);
    metrics_.wal_fsync_seconds.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  // Only now: these promise that the entries and vote above are on disk.
  if (!rd.persisted_messages.empty()) {
    observe_outgoing(rd.persisted_messages);
    transport_.send(std::move(rd.persisted_messages));
  }
  if (!rd.committed_entries.empty()) apply(rd.committed_entries);
  for (ReadState& rs : rd.read_states) {
    auto it = reads_.find(rs.context);
    if (it == reads_.end()) continue;
    for (Pending& p : it->second) {
      p.index = rs.index;
      reads_waiting_apply_.emplace_back(rs.index, std::move(p));
    }
    reads_.erase(it);
  }
  raw_->advance(rd);
  const LogIndex applied = raw_->raft().log().applied();
  // Reads whose read index is now applied can be served from the local state machine.
  std::erase_if(reads_waiting_apply_, [&](auto& r) {
    if (r.first > applied) return false;
    r.second.done(CommandResult{NodeError::kOk, {}, raw_->raft().leader(), r.first});
    return true;
  });
  maybe_snapshot();
}

void Node::apply(std::vector<Entry>& committed) {
  const auto t0 = Clock::now();
  std::vector<Entry> batch;
  batch.reserve(committed.size());
  std::vector<Envelope> envs(committed.size());
  for (size_t k = 0; k < committed.size(); ++k) {
    const Entry& e = committed[k];
    Entry user{e.term, e.index, e.type, {}};
    if (e.type == EntryType::kNormal && !e.data.empty() && unwrap(e.data, &envs[k])) user.data = envs[k].payload;
    batch.push_back(std::move(user));
  }
  std::vector<std::string> results;
  results.reserve(batch.size());
  sm_.apply(batch, &results);
  metrics_.apply_seconds.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  metrics_.proposals_committed += batch.size();
  metrics_.proposals_applied += batch.size();
  for (size_t k = 0; k < batch.size(); ++k) {
    const Envelope& env = envs[k];
    if (env.origin == opt_.id) {
      auto it = proposals_.find(env.request);
      if (it != proposals_.end()) {
        auto done = std::move(it->second.done);
        metrics_.proposal_seconds.observe(std::chrono::duration<double>(exec_->now() - it->second.started).count());
        proposals_.erase(it);
        done(CommandResult{NodeError::kOk, k < results.size() ? std::move(results[k]) : std::string(),
                           raw_->raft().leader(), batch[k].index});
      }
    }
  }
  // A proposal appended here whose index now holds another entry was overwritten by a new
  // leader: it will never apply. (Proposals still waiting on a later index stay.)
  const LogIndex last = batch.back().index;
  for (auto it = proposals_.begin(); it != proposals_.end();) {
    Pending& p = it->second;
    if (p.index.value == 0 || p.index > last) {
      ++it;
      continue;
    }
    metrics_.proposals_failed++;
    p.done(CommandResult{NodeError::kLeadershipLost, {}, raw_->raft().leader(), p.index});
    it = proposals_.erase(it);
  }
  metrics_.proposals_pending = proposals_.size();
}

void Node::maybe_snapshot() {
  if (snapshot_writer_) return;  // one at a time
  const LogIndex applied = raw_->raft().log().applied();
  // The first snapshot after start comes at this member's staggered point; the rest follow
  // every snapshot_entries (so the members stay apart).
  const uint64_t next = last_snapshot_.value == 0 ? opt_.snapshot_entries + snapshot_offset_
                                                  : last_snapshot_.value + opt_.snapshot_entries;
  if (applied.value < next) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::function<void(ByteSink&)> image;
  if (!std::exchange(snapshot_on_loop_next_, false)) image = sm_.snapshot_image();
  if (!image) {
    log_.create_snapshot(applied, raw_->raft().conf_at(applied), [&](ByteSink& out) { sm_.save_snapshot(out); });
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    snapshot_recorded(applied, t0, ms);
    return;
  }
  snapshot_loop_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // The image is written and synced on bg_; the loop goes on appending, acking and applying.
  snapshot_writer_ = std::shared_ptr<SnapshotWriter>(log_.begin_snapshot(applied, raw_->raft().conf_at(applied)));
  snapshot_started_ = t0;
  bg_->post([this, alive = alive_, weak = std::weak_ptr<SnapshotWriter>(snapshot_writer_), applied,
             image = std::move(image)] {
    std::shared_ptr<SnapshotWriter> writer = weak.lock();
    if (!writer || !*alive) return;
    std::string error;
    bool abandoned = false;
    try {
      image(*writer);
      writer->commit();
    } catch (const SnapshotAbandoned& e) {
      abandoned = true;
      error = e.what();
    } catch (const std::exception& e) {
      error = e.what();
    }
    writer.reset();
    exec_->post([this, alive, applied, error, abandoned] {
      if (*alive) snapshot_written(applied, error, abandoned);
    });
  });
}

void Node::snapshot_written(LogIndex index, const std::string& error, bool abandoned) {
  std::shared_ptr<SnapshotWriter> writer = std::move(snapshot_writer_);
  if (!writer || failed_) return;
  if (abandoned) {
    // The state machine could not finish a consistent image; the next one is taken on the
    // loop thread (save_snapshot), which always can. The uncommitted file is discarded.
    spdlog::info("raft: node {:x} abandoned its snapshot at index {} ({}); the next is taken on the loop",
                 opt_.id.value, index.value, error);
    snapshot_on_loop_next_ = true;
    metrics_.snapshots_abandoned++;
    return;
  }
  if (!error.empty()) {
    // A failed write or fsync of the image: the store has stopped; so does the node.
    fatal("writing the snapshot at index " + std::to_string(index.value) + ": " + error);
    return;
  }
  run_guarded([&] {
    if (log_.finish_snapshot(writer->metadata())) {
      snapshot_recorded(index, snapshot_started_, snapshot_loop_ms_);
    } else {
      spdlog::info("raft: node {:x} dropped its snapshot at index {}: a newer one arrived meanwhile",
                   opt_.id.value, index.value);
    }
  });
}

void Node::snapshot_recorded(LogIndex applied, std::chrono::steady_clock::time_point started, double loop_ms) {
  last_snapshot_ = std::max(last_snapshot_, applied);
  metrics_.snapshots_saved++;
  if (applied.value > opt_.catchup_entries) {
    const LogIndex upto = applied - opt_.catchup_entries;
    if (upto >= log_.first_index()) log_.compact(upto);
  }
  spdlog::info("raft: node {:x} saved snapshot at index {} in {:.1f} ms (the loop paused {:.1f} ms for the image)",
               opt_.id.value, applied.value,
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count(), loop_ms);
}

void Node::expire(TimePoint now) {
  for (auto it = proposals_.begin(); it != proposals_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    metrics_.proposals_failed++;
    it->second.done(CommandResult{NodeError::kTimeout, {}, raw_->raft().leader(), it->second.index});
    it = proposals_.erase(it);
  }
  for (auto it = reads_.begin(); it != reads_.end();) {
    std::erase_if(it->second, [&](Pending& p) {
      if (p.deadline > now) return false;
      p.done(CommandResult{NodeError::kTimeout, {}, raw_->raft().leader(), {}});
      return true;
    });
    it = it->second.empty() ? reads_.erase(it) : std::next(it);
  }
  std::erase_if(reads_waiting_apply_, [&](auto& r) {
    if (r.second.deadline > now) return false;
    r.second.done(CommandResult{NodeError::kTimeout, {}, raw_->raft().leader(), {}});
    return true;
  });
  metrics_.proposals_pending = proposals_.size();
}

void Node::fail_all(NodeError error) {
  for (auto& [id, p] : proposals_) p.done(CommandResult{error, {}, kNoNode, {}});
  proposals_.clear();
  for (auto& [ctx, waiting] : reads_)
    for (Pending& p : waiting) p.done(CommandResult{error, {}, kNoNode, {}});
  reads_.clear();
  for (auto& [idx, p] : reads_waiting_apply_) p.done(CommandResult{error, {}, kNoNode, {}});
  reads_waiting_apply_.clear();
}

void Node::fatal(const std::string& why) {
  // Never continue after a failed write or fsync: what the disk holds is no longer known.
  failed_ = true;
  spdlog::critical("raft: node {:x} stopping on storage failure: {}", opt_.id.value, why);
  fail_all(NodeError::kStopped);
  {
    std::lock_guard lk(status_mu_);
    status_.stopped = true;
  }
  if (opt_.on_fatal) {
    opt_.on_fatal(why);
  } else {
    std::abort();
  }
}

// Round trips for metrics: one sample in flight per peer, so the cost is a map lookup per
// message and the figure is an honest network + follower-disk round trip.
void Node::observe_outgoing(const std::vector<Message>& msgs) {
  const TimePoint now = exec_->now();
  for (const Message& m : msgs) {
    if (m.type == MessageType::kApp && !m.entries.empty()) {
      RttProbe& p = append_probes_[m.to];
      // A sample whose ack was lost would block the peer's samples forever: give up on it.
      const auto stale = opt_.tick_interval * opt_.election_ticks * 2;
      if (!p.active || now - p.sent > stale) p = RttProbe{true, m.entries.back().index.value, now};
    } else if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      vote_probes_[m.to] = RttProbe{true, m.term.value, now};
    }
  }
}

void Node::observe_incoming(const Message& m) {
  if (m.type == MessageType::kAppResp) {
    auto it = append_probes_.find(m.from);
    if (it == append_probes_.end() || !it->second.active) return;
    if (m.reject) {
      it->second.active = false;  // the follower diverged: this sample measures nothing useful
    } else if (m.index.value >= it->second.key) {
      metrics_.append_rtt_seconds.observe(std::chrono::duration<double>(exec_->now() - it->second.sent).count());
      it->second.active = false;
    }
  } else if (m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp) {
    auto it = vote_probes_.find(m.from);
    if (it == vote_probes_.end() || !it->second.active || it->second.key != m.term.value) return;
    metrics_.vote_rtt_seconds.observe(std::chrono::duration<double>(exec_->now() - it->second.sent).count());
    it->second.active = false;
  }
}

void Node::publish_status() {
  const Raft& r = raw_->raft();
  const RaftLog& log = r.log();
  metrics_.term = r.term().value;
  metrics_.commit_index = log.committed().value;
  metrics_.applied_index = log.applied().value;
  metrics_.log_entries = log.last_index() - (log.first_index() - 1);
  NodeStatus s;
  s.id = opt_.id;
  s.leader = r.leader();
  s.role = r.role();
  s.term = r.term();
  s.commit = log.committed();
  s.applied = log.applied();
  s.first_index = log.first_index();
  s.last_index = log.last_index();
  s.stopped = failed_;
  if (r.role() == Role::kLeader) {
    uint64_t healthy = 0;
    for (const auto& p : raw_->status().progress) {
      if (p.id != opt_.id && p.state == ProgressState::kReplicate && p.recent_active) healthy++;
      s.progress.push_back(p);
    }
    metrics_.healthy_followers = healthy;
  } else {
    metrics_.healthy_followers = 0;
  }
  std::lock_guard lk(status_mu_);
  status_ = std::move(s);
}

}  // namespace balsa
