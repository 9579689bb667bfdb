// The node's metrics, as lock-free counters, gauges and fixed-bucket histograms, rendered in
// the Prometheus text format. Names follow etcd's where etcd has one, balsa_* otherwise.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace balsa {

// A histogram with etcd's disk buckets: 1 ms doubling to 4.096 s (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 13> kBounds = {0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                                     0.128, 0.256, 0.512, 1.024, 2.048, 4.096};
  void observe(double seconds);
  // Appends "# TYPE" and the bucket, sum and count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

struct NodeMetrics {
  std::atomic<uint64_t> has_leader{0};
  std::atomic<uint64_t> is_leader{0};
  std::atomic<uint64_t> leader_changes{0};
  std::atomic<uint64_t> proposals_committed{0};  // committed entries seen (etcd counts the same)
  std::atomic<uint64_t> proposals_applied{0};
  std::atomic<uint64_t> proposals_pending{0};
  std::atomic<uint64_t> proposals_failed{0};
  std::atomic<uint64_t> term{0};
  std::atomic<uint64_t> commit_index{0};
  std::atomic<uint64_t> applied_index{0};
  std::atomic<uint64_t> log_entries{0};
  std::atomic<uint64_t> healthy_followers{0};
  std::atomic<uint64_t> snapshots_saved{0};
  std::atomic<uint64_t> snapshots_restored{0};
  std::atomic<uint64_t> messages_refused{0};
  Histogram wal_fsync_seconds;
  Histogram apply_seconds;
  Histogram append_rtt_seconds;  // proposal to commit on the leader (a replication round trip)

  std::string render_prometheus() const;
};

}  // namespace balsa
