// balsa::kv::LeaseDeadlines: when each lease expires, by one member's monotonic clock. It is
// the time half of etcd's lessor, kept out of the deterministic state machine: the leader's
// driver (balsad's LeaseKeeper, or the simulator) feeds it what the store applies (grants,
// replicated keep-alives, revokes), asks it which leases are overdue and proposes their revokes
// through the log. Every member keeps one (TimeToLive answers from it); only the leader acts.
//
// Time is an integer count of milliseconds of a clock the caller reads and passes in, so the
// simulator drives it with its virtual clock. Not thread-safe (the owner locks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace balsa::kv {

class LeaseDeadlines {
 public:
  // A grant or a keep-alive: the lease expires ttl_s seconds after now_ms.
  void refresh(int64_t id, int64_t ttl_s, int64_t now_ms);
  void erase(int64_t id);
  void clear();
  bool contains(int64_t id) const { return leases_.contains(id); }
  size_t size() const { return leases_.size(); }

  // The member became leader: every lease gets its full TTL again plus `extend_ms` (etcd's
  // lessor.Promote with the election timeout), so no lease expires because an election took
  // time its holder could not keep it alive in. When many leases would then expire within one
  // second, later ones are pushed back so that at most `revokes_per_s` * 3/4 fall due per
  // second (etcd's pile-up spreading).
  void promote(const std::vector<std::pair<int64_t, int64_t>>& leases, int64_t now_ms,
               int64_t extend_ms, int64_t revokes_per_s);

  // Up to `max` overdue leases, earliest first, that have no revoke in flight; each returned
  // one is marked as having a revoke in flight until `retry_ms` later (a revoke lost with a
  // leader change or dropped is proposed again then).
  std::vector<int64_t> take_expired(int64_t now_ms, size_t max, int64_t retry_ms);

  // Remaining whole seconds (etcd truncates), 0 if overdue, -1 if unknown.
  int64_t remaining_s(int64_t id, int64_t now_ms) const;

 private:
  struct Entry {
    int64_t deadline_ms = 0;
    int64_t retry_at_ms = 0;  // a revoke is in flight until then
  };
  void set_deadline(int64_t id, int64_t deadline_ms);

  std::unordered_map<int64_t, Entry> leases_;
  std::set<std::pair<int64_t, int64_t>> by_deadline_;  // (deadline_ms, id)
};

}  // namespace balsa::kv
