// etcd's Maintenance service: Status, HashKV, MoveLeader.
#pragma once

#include "balsad/service_context.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace balsa::balsad {

class MaintenanceService final : public ::etcdserverpb::Maintenance::CallbackService {
 public:
  explicit MaintenanceService(ServiceContext& s) : s_(s) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const ::etcdserverpb::StatusRequest* req,
                                   ::etcdserverpb::StatusResponse* resp) override;
  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx, const ::etcdserverpb::HashKVRequest* req,
                                   ::etcdserverpb::HashKVResponse* resp) override;
  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx,
                                       const ::etcdserverpb::MoveLeaderRequest* req,
                                       ::etcdserverpb::MoveLeaderResponse* resp) override;

 private:
  ServiceContext& s_;
};

}  // namespace balsa::balsad
