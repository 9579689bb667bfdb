// etcd's Cluster service: MemberList.
#pragma once

#include "balsad/service_context.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace balsa::balsad {

class ClusterService final : public ::etcdserverpb::Cluster::CallbackService {
 public:
  explicit ClusterService(ServiceContext& s) : s_(s) {}

  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const ::etcdserverpb::MemberListRequest* req,
                                       ::etcdserverpb::MemberListResponse* resp) override;

 private:
  ServiceContext& s_;
};

}  // namespace balsa::balsad
