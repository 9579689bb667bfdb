// balsa::balsad::LeaseKeeper: the clock behind balsad's leases, outside the deterministic
// state machine. Every member keeps a LeaseDeadlines fed from what its store applies (grants,
// replicated keep-alives, revokes); TimeToLive answers from it. On the leader, a thread looks
// every tick_ms for overdue leases and proposes their revokes through the log, at most
// revokes_per_s (etcd's leaseRevokeRate), so the keys of an expired lease vanish on every member
// at the same revision. When this member becomes leader (a new term) every lease gets its full
// TTL again plus the election timeout, as etcd's lessor.Promote: an election never expires
// leases whose holders kept them alive through it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "kv/lease_deadlines.h"
#include "kv/mvcc_store.h"

namespace balsa::balsad {

class ServiceContext;

class LeaseKeeper {
 public:
  struct Options {
    int64_t election_timeout_ms = 1000;
    int64_t tick_ms = 100;
    int64_t revokes_per_s = 1000;
  };
  explicit LeaseKeeper(Options options) : options_(options) {}
  ~LeaseKeeper() { stop(); }

  // MvccStore::Options::on_lease (the apply thread).
  void on_change(const kv::LeaseChange& c);

  // Starts the expiry thread; `s` must outlive stop().
  void start(ServiceContext& s);
  void stop();

  // Seconds left of a lease this member knows (its granted TTL if no deadline is known yet).
  int64_t remaining_s(int64_t id, int64_t granted_ttl);

 private:
  void run();
  void tick();
  static int64_t now_ms();

  const Options options_;
  ServiceContext* s_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool reload_ = true;        // the table was replaced (restore) or never loaded
  uint64_t leader_term_ = 0;  // the term this member last became leader in (0: follower)
  kv::LeaseDeadlines deadlines_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace balsa::balsad
