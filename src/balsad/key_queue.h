// balsa::balsad::KeyQueue: the recipe etcd's concurrency.Mutex and concurrency.Election share,
// run inside the server for the v3lock and v3election services. A contender writes the key
// `prefix + hex(lease)` (attached to its lease) if it is not there yet; contenders are ordered
// by the create revision of their key; a contender owns the prefix once every key created
// before its own is gone (deleted, or revoked with its lease). That create revision is the
// owner's fencing token: it only grows from owner to owner.
//
// Unlike etcd 3.4 (Jepsen's finding), the waiter re-reads its own key once its predecessors
// are gone: if its lease expired meanwhile the key is gone too and the acquisition fails
// instead of reporting a lock it does not hold.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "balsad/key_waiter.h"
#include "balsad/service_context.h"

namespace balsa::balsad {

struct QueueEntry {
  std::string key;
  int64_t create_revision = 0;
  int64_t header_revision = 0;  // the revision the ownership was observed at
};

// One acquisition in progress. done(status, entry) runs exactly once.
class KeyQueue : public std::enable_shared_from_this<KeyQueue> {
 public:
  using Done = std::function<void(const grpc::Status&, const QueueEntry&)>;

  // `value` is written with the key; with `update_value` (Election.Campaign) an existing key
  // whose value differs is updated to it (etcd's Campaign on a resumed session).
  static std::shared_ptr<KeyQueue> acquire(ServiceContext& s, KeyWaiter& waiter, std::string prefix, int64_t lease,
                                           std::string value, bool update_value, Done done);

  // The client went away: stop waiting, delete the key if this acquisition wrote it (etcd's
  // cleanup on a canceled Lock/Campaign), and finish with CANCELLED.
  void cancel();

  KeyQueue(ServiceContext& s, KeyWaiter& waiter) : s_(s), waiter_(waiter) {}

 private:
  void start(std::string prefix, int64_t lease, std::string value, bool update_value, Done done);
  void after_txn(const ::balsa::kvpb::KvResult& r);
  void wait_predecessors();
  void check_own_key();
  void finish(const grpc::Status& st);

  ServiceContext& s_;
  KeyWaiter& waiter_;
  std::mutex mu_;
  Done done_;
  bool finished_ = false;
  bool created_ = false;
  std::string prefix_, value_;
  bool update_value_ = false;
  QueueEntry entry_;
  std::shared_ptr<KeyWaiter::Wait> wait_;
};

// etcd's key of a lease's contender: prefix + lowercase hex of the lease id (fmt %x).
std::string contender_key(const std::string& prefix, int64_t lease);

// The range end that covers every key starting with `prefix` (clientv3.GetPrefixRangeEnd).
std::string prefix_end(const std::string& prefix);

}  // namespace balsa::balsad
