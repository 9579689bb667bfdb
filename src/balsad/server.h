// balsad's client-facing gRPC services (etcd v3 API), on gRPC's callback API: no thread waits
// for a request. Writes are proposed through the Node (any member accepts them: followers
// forward to the leader) and complete when applied here; linearizable reads wait for a
// ReadIndex barrier and then read the local state machine.
//
// Implemented: KV.Range/Put/DeleteRange/Txn/Compact, Maintenance.Status/HashKV/MoveLeader,
// Cluster.MemberList. Everything else answers UNIMPLEMENTED (Watch, Lease, Auth, member
// changes, snapshots, defragment, alarms).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "balsad/config.h"
#include "kv/kv_state_machine.h"
#include "runtime/node.h"

namespace balsa::balsad {

inline constexpr const char* kEtcdVersion = "3.4.23";

// etcd's gRPC error for a Node failure (rpctypes/error.go wording).
grpc::Status to_grpc_status(NodeError e);

class ClientServices {
 public:
  ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm);
  ~ClientServices();

  // Registers every service on `builder`; `this` must outlive the server.
  void register_on(grpc::ServerBuilder& builder);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace balsa::balsad
