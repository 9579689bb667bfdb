// Log replication, both sides: what a follower does with appends, heartbeats and snapshots, and
// how the leader sends them, counts acknowledgements and advances the commit index.
#include <algorithm>

#include "core/assert.h"
#include "core/raft.h"

namespace balsa {

// ---------------------------------------------------------------------------------------------
// Follower side of replication

void Raft::handle_append(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.index < log_.committed()) {
    // Everything up to our commit index is already known to match: say so.
    resp.index = log_.committed();
    send(std::move(resp));
    return;
  }
  const LogIndex committed_before = log_.committed();
  if (auto last_new = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
    // A configuration takes effect as soon as its entry is in the log, and goes away with it.
    sync_conf(m.entries, committed_before);
    resp.index = *last_new;
    send(std::move(resp));
    return;
  }
  // Reject with a hint so the leader can skip a whole term at once (§5.3, "fast backup"):
  // our last index + 1 if our log is too short, else the conflicting term and its first index.
  resp.reject = true;
  resp.index = m.index;
  if (m.index > log_.last_index()) {
    resp.reject_hint = log_.last_index() + 1;
  } else {
    resp.log_term = log_.term_or_zero(m.index);
    resp.reject_hint = log_.first_index_of_term(m.index, log_.committed());
  }
  send(std::move(resp));
}

void Raft::handle_heartbeat(const Message& m) {
  // The leader bounds the commit index by our match, so it never exceeds what we hold.
  log_.commit_to(std::min(m.commit, log_.last_index()));
  if (cfg_.planted_bug == PlantedBug::kConfOnCommit) sync_conf({}, log_.committed());
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  resp.index = m.index;  // the heartbeat round, for the leader's lease
  send(std::move(resp));
}

void Raft::handle_snapshot(const Message& m) {
  const SnapshotMetadata& meta = m.snapshot.metadata;
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (meta.index <= log_.committed()) {
    resp.index = log_.committed();
  } else if (log_.match_term(meta.index, meta.term)) {
    // We already hold the snapshot's last entry: just fast-forward the commit index.
    log_.commit_to(meta.index);
    resp.index = log_.committed();
  } else {
    log_.restore(m.snapshot);
    confs_.reset(meta.index, meta.term, meta.conf);
    apply_conf(meta.conf);
    resp.index = log_.last_index();
  }
  send(std::move(resp));
}

// ---------------------------------------------------------------------------------------------
// Leader side of replication

bool Raft::append_entries(std::vector<Entry>* entries) {
  uint64_t bytes = 0;
  for (const Entry& e : *entries) bytes += e.data.size();
  if (cfg_.max_uncommitted_bytes != 0 && uncommitted_bytes_ > 0 &&
      uncommitted_bytes_ + bytes > cfg_.max_uncommitted_bytes)
    return false;
  uncommitted_bytes_ += bytes;
  LogIndex next = log_.last_index() + 1;
  for (Entry& e : *entries) {
    e.term = term_;
    e.index = next;
    ++next;
  }
  std::vector<Entry> conf_entries;
  for (const Entry& e : *entries)
    if (e.type == EntryType::kConfChange) conf_entries.push_back(e);
  log_.append(std::move(*entries));
  if (!conf_entries.empty()) sync_conf(conf_entries, log_.committed());
  // A single-voter cluster commits as soon as the entry is durable: see on_persisted().
  return true;
}

bool Raft::send_append(NodeId to, bool send_if_empty) {
  if (to == id_) return false;
  Progress* prp = tracker_.progress(to);
  if (!prp) return false;
  Progress& pr = *prp;
  if (pr.is_paused()) return false;
  Message m;
  m.to = to;
  const LogIndex prev = pr.next - 1;
  const auto prev_term = log_.term(prev);
  bool compacted = false;
  std::vector<Entry> entries;
  if (prev_term) entries = log_.entries_from(pr.next, cfg_.max_msg_bytes, &compacted);
  const bool witness = tracker_.is_witness(to);
  if (!prev_term || compacted) {
    // The follower needs entries we no longer have: send the snapshot instead.
    if (!pr.recent_active) return false;
    const Snapshot* pending = log_.pending_snapshot();
    Snapshot snap = pending ? *pending : log_.storage().snapshot();
    BALSA_ASSERT(!snap.empty(), "log compacted below {} but no snapshot exists", pr.next.value);
    m.type = MessageType::kSnap;
    pr.become_snapshot(snap.metadata.index);
    // A witness keeps no state machine: it gets the snapshot's metadata (terms, indexes and
    // configuration), never the image.
    if (witness) {
      snap.data.clear();
      m.context = kWitnessSnapshot;
    }
    m.snapshot = std::move(snap);
    send(std::move(m));
    return false;
  }
  if (entries.empty() && !send_if_empty) return false;
  if (witness) {
    // Terms and indexes only: commands stay off the witness (configurations stay: it needs them).
    for (Entry& e : entries)
      if (e.type == EntryType::kNormal) e.data.clear();
  }
  uint64_t bytes = 0;
  for (const Entry& e : entries) bytes += e.payload_bytes();
  const size_t count = entries.size();
  const LogIndex last = count ? entries.back().index : prev;
  m.type = MessageType::kApp;
  m.index = prev;
  m.log_term = *prev_term;
  m.entries = std::move(entries);
  m.commit = log_.committed();
  pr.sent_entries(last, bytes, count);
  send(std::move(m));
  return count > 0;
}

// Streams everything a replicating follower can take now (pipelining within the window).
void Raft::send_append_all(NodeId to) {
  if (!send_append(to, true)) return;
  while (send_append(to, false)) {
  }
}

void Raft::broadcast_append() {
  for (auto& [id, pr] : tracker_.all())
    if (id != id_) send_append_all(id);
}

void Raft::broadcast_heartbeat(const std::string& context) {
  const uint64_t round = lease_.start_round(now_);
  for (auto& [id, pr] : tracker_.all()) {
    if (id == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = id;
    // Never tell a follower to commit past what it is known to hold.
    m.commit = std::min(pr.match, log_.committed());
    m.context = context;
    m.index = LogIndex{round};
    send(std::move(m));
  }
}

bool Raft::maybe_commit() {
  const LogIndex idx = tracker_.committed_index();
  bool advanced;
  if (cfg_.planted_bug == PlantedBug::kCommitPreviousTerm) {
    // The Figure 8 bug: counting replicas of an older term's entry is not enough.
    advanced = idx > log_.committed();
    if (advanced) log_.commit_to(idx);
  } else {
    // Only an entry of the current term is committed by counting replicas (§5.4.2).
    advanced = log_.maybe_commit(idx, term_);
  }
  if (advanced) after_commit();
  return advanced;
}

void Raft::handle_append_response(const Message& m, Progress& pr) {
  pr.recent_active = true;
  if (m.index > log_.last_index()) {
    stats_.invalid++;  // acknowledges entries we never had
    return;
  }
  if (m.reject) {
    // Where to retry: if we have the follower's conflicting term, right after our last entry
    // of that term; otherwise at the first index the follower has of it.
    LogIndex retry = m.reject_hint;
    if (m.log_term.value != 0) {
      const LogIndex j = log_.find_conflict_by_term(m.index, m.log_term);
      if (j.value > 0 && log_.term_or_zero(j) == m.log_term) retry = j + 1;
    }
    if (pr.maybe_decrease_to(m.index, retry)) send_append(m.from, true);
    return;
  }
  const bool was_paused = pr.is_paused();
  if (!pr.maybe_update(m.index)) return;  // an old, reordered ack
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match >= pr.pending_snapshot) pr.become_probe();
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_le(m.index);
      break;
  }
  const NodeId from = m.from;
  if (maybe_commit()) {
    if (role_ != Role::kLeader) return;  // stepped down: its own removal committed
    broadcast_append();
  } else if (was_paused || pr.next <= log_.last_index()) {
    send_append_all(from);
  }
  const Progress* now = tracker_.progress(from);
  if (from == lead_transferee_ && now && now->match == log_.last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = from;
    send(std::move(t));
  }
  tracker_.maybe_forget_departing(from);
}

void Raft::handle_heartbeat_response(const Message& m, Progress& pr) {
  pr.recent_active = true;
  pr.probe_sent = false;
  // If the window is full, assume the oldest append was lost so replication can resume.
  if (pr.state == ProgressState::kReplicate && pr.inflights.full()) pr.inflights.free_first_one();
  if (pr.match < log_.last_index()) send_append(m.from, true);
  if (m.index.value != 0) lease_.ack(m.from, m.index.value, id_, tracker_);
  if (m.context.empty() || reads_.empty()) return;
  serve_reads(reads_.ack(m.context, m.from, tracker_));
}

void Raft::serve_reads(std::vector<ReadIndexQueue::Read> reads) {
  for (auto& r : reads) {
    if (r.from == id_) {
      read_states_.push_back({r.index, std::move(r.context)});
    } else {
      Message resp;
      resp.type = MessageType::kReadIndexResp;
      resp.to = r.from;
      resp.index = r.index;
      resp.context = std::move(r.context);
      send(std::move(resp));
    }
  }
}

bool Raft::committed_entry_in_current_term() const {
  return log_.term_or_zero(log_.committed()) == term_;
}

void Raft::handle_read_index_request(NodeId from, std::string context) {
  if (!committed_entry_in_current_term()) {
    // Until the no-op commits, our commit index may be behind the previous leader's (§6.4).
    reads_.defer(from, std::move(context));
    return;
  }
  reads_.add(log_.committed(), std::move(context), from, id_);
  if (tracker_.single_voter(id_)) {
    serve_reads(reads_.release_all());
    return;
  }
  broadcast_heartbeat(reads_.last_context());
}

}  // namespace balsa
