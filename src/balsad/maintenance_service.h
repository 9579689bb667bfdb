// etcd's Maintenance service: Status, HashKV, MoveLeader, Snapshot, Defragment, Alarm.
//
// Snapshot streams snapshot_file.h's format: the state machine's point-in-time image is first
// spooled to an unlinked file in the data dir (written by a background thread, as local Raft
// snapshots are, so applies go on), then sent in 1 MiB messages ending with its SHA-256.
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
  grpc::ServerWriteReactor<::etcdserverpb::SnapshotResponse>* Snapshot(
      grpc::CallbackServerContext* ctx, const ::etcdserverpb::SnapshotRequest* req) override;
  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* ctx, const ::etcdserverpb::DefragmentRequest* req,
                                       ::etcdserverpb::DefragmentResponse* resp) override;
  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* ctx, const ::etcdserverpb::AlarmRequest* req,
                                  ::etcdserverpb::AlarmResponse* resp) override;

 private:
  ServiceContext& s_;
};

}  // namespace balsa::balsad
