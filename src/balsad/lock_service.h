// etcd's v3lock service (v3lockpb.Lock): Lock(name, lease) waits until the caller owns the
// lock and answers with its key `name/<lease hex>`; Unlock(key) deletes that key. Ownership is
// etcd's Mutex recipe (key_queue.h): the lowest create revision under `name/` holds the lock,
// and that revision is its fencing token. A holder whose lease expires (or is revoked) loses
// the key, and with it the lock: the next waiter gets it. A Lock on an unknown or revoked lease
// fails with "etcdserver: requested lease not found"; a Lock whose client goes away removes its key.
#pragma once

#include "balsad/key_waiter.h"
#include "balsad/service_context.h"
#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"

namespace balsa::balsad {

class LockService final : public ::v3lockpb::Lock::CallbackService {
 public:
  LockService(ServiceContext& s, KeyWaiter& waiter) : s_(s), waiter_(waiter) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx, const ::v3lockpb::LockRequest* req,
                                 ::v3lockpb::LockResponse* resp) override;
  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx, const ::v3lockpb::UnlockRequest* req,
                                   ::v3lockpb::UnlockResponse* resp) override;

 private:
  ServiceContext& s_;
  KeyWaiter& waiter_;
};

}  // namespace balsa::balsad
