// etcd's Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive (a stream), LeaseTimeToLive,
// LeaseLeases. Grants, revokes and every keep-alive go through the log (one way through: each
// member's LeaseKeeper hears of them when it applies them); the leader's LeaseKeeper decides
// expiry and commits it as a revoke. TimeToLive's remaining TTL is the answering member's
// LeaseKeeper's (on a follower it trails the leader's by the apply lag).
#pragma once

#include <atomic>

#include "balsad/lease_keeper.h"
#include "balsad/service_context.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace balsa::balsad {

class LeaseService final : public ::etcdserverpb::Lease::CallbackService {
 public:
  // min_ttl_s: etcd's minimum lease TTL, ceil(1.5 election timeouts) (2 s by default): a grant
  // asking less gets it.
  LeaseService(ServiceContext& s, LeaseKeeper& keeper, int64_t min_ttl_s)
      : s_(s), keeper_(keeper), min_ttl_s_(min_ttl_s) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx, const ::etcdserverpb::LeaseGrantRequest* req,
                                       ::etcdserverpb::LeaseGrantResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const ::etcdserverpb::LeaseRevokeRequest* req,
                                        ::etcdserverpb::LeaseRevokeResponse* resp) override;
  grpc::ServerBidiReactor<::etcdserverpb::LeaseKeepAliveRequest, ::etcdserverpb::LeaseKeepAliveResponse>*
  LeaseKeepAlive(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const ::etcdserverpb::LeaseTimeToLiveRequest* req,
                                            ::etcdserverpb::LeaseTimeToLiveResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx,
                                        const ::etcdserverpb::LeaseLeasesRequest* req,
                                        ::etcdserverpb::LeaseLeasesResponse* resp) override;

  // etcd's minimum TTL for an election timeout and heartbeat interval.
  static int64_t min_ttl_seconds(int election_timeout_ms, int heartbeat_interval_ms);

 private:
  int64_t next_id();  // etcd's idutil layout: member bits, time, counter

  ServiceContext& s_;
  LeaseKeeper& keeper_;
  const int64_t min_ttl_s_;
  std::atomic<uint64_t> id_counter_{0};
};

}  // namespace balsa::balsad
