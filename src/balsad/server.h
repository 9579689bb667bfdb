// balsad's client-facing gRPC services (etcd v3 API), on gRPC's callback API: no thread waits
// for a request. One file per service (kv_service, maintenance_service, cluster_service); what
// they share (the write and read paths, the response header) is in service_context.h.
//
// Implemented: KV.Range/Put/DeleteRange/Txn/Compact, Maintenance.Status/HashKV/MoveLeader/
// Snapshot/Defragment/Alarm,
// Cluster.MemberList. Everything else answers UNIMPLEMENTED.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "balsad/config.h"
#include "kv/kv_state_machine.h"
#include "runtime/node.h"

namespace balsa::balsad {

class ServiceContext;
struct ServiceLimits;

class ClientServices {
 public:
  ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, const ServiceLimits& limits);
  ~ClientServices();

  // What the services share (the HTTP gateway reuses its write and read paths).
  ServiceContext& context();

  // Registers every service on `builder`; `this` must outlive the server.
  void register_on(grpc::ServerBuilder& builder);

  struct Services;

 private:
  std::unique_ptr<Services> services_;
};

}  // namespace balsa::balsad
