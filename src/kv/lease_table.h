// balsa::kv::LeaseTable: the replicated half of etcd's leases (go.etcd.io/etcd/lease). A lease is
// an id, the TTL it was granted with, and the set of keys whose current record names it.
//
// What is NOT here: time. When a lease expires is decided by the leader's LeaseDeadlines
// (lease_deadlines.h), outside the deterministic state machine, and committed through the log
// as a revoke; so every member deletes a lease's keys at the same revision.
//
// Invariants (checked by MvccStore): a key is attached to at most one lease, and to lease L
// exactly when the key's newest record is a live put with lease == L and L is in the table.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace balsa::kv {

// etcd's lease.MaxLeaseTTL: a grant above it fails with "etcdserver: too large lease TTL".
inline constexpr int64_t kMaxLeaseTtlSeconds = 9'000'000'000;

struct Lease {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds, as granted (after the proposer's minimum-TTL clamp)
  std::set<std::string, std::less<>> keys;
  bool operator==(const Lease&) const = default;
};

class LeaseTable {
 public:
  bool contains(int64_t id) const { return leases_.contains(id); }
  const Lease* find(int64_t id) const {
    auto it = leases_.find(id);
    return it == leases_.end() ? nullptr : &it->second;
  }
  // False if `id` exists already.
  bool grant(int64_t id, int64_t ttl) { return leases_.emplace(id, Lease{id, ttl, {}}).second; }
  // The lease's keys, and removes it; false if unknown.
  bool erase(int64_t id, std::vector<std::string>* keys) {
    auto it = leases_.find(id);
    if (it == leases_.end()) return false;
    if (keys != nullptr) keys->assign(it->second.keys.begin(), it->second.keys.end());
    leases_.erase(it);
    return true;
  }
  // No-ops for a lease that is not in the table (a key that outlived its lease's revoke
  // cannot exist: revoke deletes it in the same write).
  void attach(int64_t id, std::string_view key) {
    if (auto it = leases_.find(id); it != leases_.end()) it->second.keys.emplace(key);
  }
  void detach(int64_t id, std::string_view key) {
    if (auto it = leases_.find(id); it != leases_.end()) {
      if (auto k = it->second.keys.find(key); k != it->second.keys.end()) it->second.keys.erase(k);
    }
  }
  const std::map<int64_t, Lease>& all() const { return leases_; }
  size_t size() const { return leases_.size(); }
  void clear() { leases_.clear(); }
  bool operator==(const LeaseTable&) const = default;

 private:
  std::map<int64_t, Lease> leases_;
};

}  // namespace balsa::kv
