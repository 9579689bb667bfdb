// balsad's client-facing gRPC services (etcd v3 API), on gRPC's callback API: no thread waits
// for a request. One file per service (kv_service, maintenance_service, cluster_service); what
// they share (the write and read paths, the response header) is in service_context.h.
//
// Implemented: KV.Range/Put/DeleteRange/Txn/Compact, Watch.Watch,
// Maintenance.Status/HashKV/MoveLeader, Cluster.MemberList, Lease.* (lease_service.h),
// v3lockpb.Lock (lock_service.h) and v3electionpb.Election (election_service.h).
// Everything else answers UNIMPLEMENTED.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "balsad/config.h"
#include "balsad/lease_keeper.h"
#include "kv/kv_state_machine.h"
#include "kv/watch_hub.h"
#include "runtime/node.h"

namespace balsa::balsad {

class ClientServices {
 public:
  // `hub` is fed by `sm`'s applies (MvccStore::Options::on_events); the Watch service drives it.
  // Starts `keeper`'s expiry thread (stopped by the destructor); `keeper` is the one the
  // state machine's on_lease feeds and must outlive the node.
  ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, kv::WatchHub& hub,
                 std::chrono::milliseconds watch_progress_interval, LeaseKeeper& keeper,
                 int64_t min_lease_ttl_s);
  ~ClientServices();

  // Registers every service on `builder`; `this` must outlive the server.
  void register_on(grpc::ServerBuilder& builder);

  struct Services;

 private:
  std::unique_ptr<Services> services_;
};

}  // namespace balsa::balsad
