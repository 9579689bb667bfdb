// etcd's v3election service (v3electionpb.Election), etcd's concurrency.Election recipe run in
// the server (key_queue.h): Campaign(name, lease, value) waits until the caller leads and
// answers with its LeaderKey {name, key name/<lease hex>, rev = the key's create revision (the
// fencing token), lease}; Proclaim(leader, value) updates the leader's value while it still
// leads ("election: not leader" otherwise); Leader(name) is the current leader's key-value
// ("election: no leader"); Observe(name) streams the leader's key-value at every change of
// leader or value; Resign(leader) deletes the leader's key if it still leads. A leader whose
// lease expires stops leading and the next campaigner takes over.
#pragma once

#include "balsad/key_waiter.h"
#include "balsad/service_context.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"

namespace balsa::balsad {

class ElectionService final : public ::v3electionpb::Election::CallbackService {
 public:
  ElectionService(ServiceContext& s, KeyWaiter& waiter) : s_(s), waiter_(waiter) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* ctx, const ::v3electionpb::CampaignRequest* req,
                                     ::v3electionpb::CampaignResponse* resp) override;
  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* ctx, const ::v3electionpb::ProclaimRequest* req,
                                     ::v3electionpb::ProclaimResponse* resp) override;
  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* ctx, const ::v3electionpb::LeaderRequest* req,
                                   ::v3electionpb::LeaderResponse* resp) override;
  grpc::ServerWriteReactor<::v3electionpb::LeaderResponse>* Observe(grpc::CallbackServerContext* ctx,
                                                                     const ::v3electionpb::LeaderRequest* req) override;
  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* ctx, const ::v3electionpb::ResignRequest* req,
                                   ::v3electionpb::ResignResponse* resp) override;

 private:
  ServiceContext& s_;
  KeyWaiter& waiter_;
};

}  // namespace balsa::balsad
