#include "runtime/metrics.h"

#include <fmt/format.h>

namespace balsa {

void Histogram::observe(double seconds) {
  size_t k = 0;
  while (k < n_bounds_ && seconds > bounds_[k]) ++k;
  buckets_[k].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t k = 0; k < n_bounds_; ++k) {
    cumulative += buckets_[k].load(std::memory_order_relaxed);
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[k], cumulative);
  }
  cumulative += buckets_[n_bounds_].load(std::memory_order_relaxed);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n", name, static_cast<double>(sum_micros_.load()) / 1e6);
  out += fmt::format("{}_count {}\n", name, count_.load());
}

std::string NodeMetrics::render_prometheus() const {
  std::string out;
  auto gauge = [&](const char* name, const char* help, uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", has_leader);
  gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", is_leader);
  counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.", leader_changes);
  counter("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.",
          proposals_committed);
  counter("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
          proposals_applied);
  gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.", proposals_pending);
  counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen.", proposals_failed);
  wal_fsync_seconds.render(out, "etcd_disk_wal_fsync_duration_seconds",
                           "The latency distributions of fsync called by WAL.");
  apply_seconds.render(out, "balsa_apply_duration_seconds", "Time to apply a batch of committed entries.");
  proposal_seconds.render(out, "balsa_proposal_duration_seconds",
                          "Time from propose() to the applied result, on the member that took the request.");
  append_rtt_seconds.render(out, "balsa_raft_append_rtt_seconds",
                            "Leader: time from sending entries to a follower to its acknowledgement of them.");
  vote_rtt_seconds.render(out, "balsa_raft_vote_rtt_seconds",
                          "Candidate: time from a vote or pre-vote request to a peer's reply.");
  gauge("balsa_raft_term", "The current Raft term.", term);
  gauge("balsa_raft_commit_index", "The commit index.", commit_index);
  gauge("balsa_raft_applied_index", "The applied index.", applied_index);
  gauge("balsa_raft_log_entries", "Entries held in the log (after the last compaction).", log_entries);
  gauge("balsa_raft_healthy_followers", "Leader: followers in replicate state and recently active.",
        healthy_followers);
  counter("balsa_snapshots_saved_total", "Local snapshots taken.", snapshots_saved);
  counter("balsa_snapshots_restored_total", "Snapshots received from the leader and restored.",
          snapshots_restored);
  counter("balsa_snapshots_abandoned_total",
          "Background snapshot images the state machine could not finish (e.g. compacted meanwhile); retaken on the loop.",
          snapshots_abandoned);
  counter("balsa_raft_messages_refused_total", "Messages the core refused (stale, invalid, non-member).",
          messages_refused);
  return out;
}

}  // namespace balsa
