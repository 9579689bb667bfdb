// The node's metrics, as lock-free counters, gauges and fixed-bucket histograms, rendered in
// the Prometheus text format. Names follow etcd's where etcd has one, balsa_* otherwise.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace balsa {

// A fixed-bucket histogram (seconds). Two bucket sets, both etcd's: disk (1 ms doubling to
// 4.096 s, etcd_disk_*) and network (100 us doubling to 0.8192 s, etcd_network_peer_*).
class Histogram {
 public:
  static constexpr std::array<double, 13> kDiskBounds = {0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                                         0.128, 0.256, 0.512, 1.024, 2.048, 4.096};
  static constexpr std::array<double, 14> kNetworkBounds = {0.0001, 0.0002, 0.0004, 0.0008, 0.0016,
                                                            0.0032, 0.0064, 0.0128, 0.0256, 0.0512,
                                                            0.1024, 0.2048, 0.4096, 0.8192};
  enum class Buckets : uint8_t { kDisk, kNetwork };

  explicit Histogram(Buckets b = Buckets::kDisk)
      : bounds_(b == Buckets::kDisk ? kDiskBounds.data() : kNetworkBounds.data()),
        n_bounds_(b == Buckets::kDisk ? kDiskBounds.size() : kNetworkBounds.size()) {}
  void observe(double seconds);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Appends "# TYPE" and the bucket, sum and count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  const double* bounds_;
  size_t n_bounds_;
  std::array<std::atomic<uint64_t>, kNetworkBounds.size() + 1> buckets_{};
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
  std::atomic<uint64_t> snapshots_abandoned{0};  // background images the state machine gave up
  std::atomic<uint64_t> messages_refused{0};
  Histogram wal_fsync_seconds;
  Histogram apply_seconds;
  Histogram proposal_seconds;  // propose() to the applied result, on the node that took it
  Histogram append_rtt_seconds{Histogram::Buckets::kNetwork};  // leader: append -> follower's ack
  Histogram vote_rtt_seconds{Histogram::Buckets::kNetwork};    // candidate: (pre-)vote -> reply

  std::string render_prometheus() const;
};

}  // namespace balsa
