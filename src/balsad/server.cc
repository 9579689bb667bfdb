#include "balsad/server.h"

#include "balsad/cluster_service.h"
#include "balsad/election_service.h"
#include "balsad/key_waiter.h"
#include "balsad/decode_error_interceptor.h"
#include "balsad/kv_service.h"
#include "balsad/lease_service.h"
#include "balsad/lock_service.h"
#include "balsad/maintenance_service.h"
#include "balsad/service_context.h"
#include "balsad/watch_service.h"

namespace balsa::balsad {

struct ClientServices::Services {
  Services(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, kv::WatchHub& hub,
           std::chrono::milliseconds watch_progress_interval, LeaseKeeper& keeper, int64_t min_ttl_s)
      : context(cluster, node, sm, &hub),
        keeper(keeper),
        kv(context),
        maintenance(context),
        cluster_svc(context),
        watch(context, hub, watch_progress_interval),
        lease(context, keeper, min_ttl_s),
        waiter(hub),
        lock(context, waiter),
        election(context, waiter) {}
  ServiceContext context;
  LeaseKeeper& keeper;
  KvService kv;
  MaintenanceService maintenance;
  ClusterService cluster_svc;
  WatchService watch;
  LeaseService lease;
  KeyWaiter waiter;
  LockService lock;
  ElectionService election;
};

ClientServices::ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, kv::WatchHub& hub,
                               std::chrono::milliseconds watch_progress_interval, LeaseKeeper& keeper,
                               int64_t min_lease_ttl_s)
    : services_(std::make_unique<Services>(cluster, node, sm, hub, watch_progress_interval, keeper,
                                           min_lease_ttl_s)) {
  keeper.start(services_->context);
}
ClientServices::~ClientServices() { services_->keeper.stop(); }

void ClientServices::register_on(grpc::ServerBuilder& builder) {
  builder.RegisterService(&services_->kv);
  builder.RegisterService(&services_->maintenance);
  builder.RegisterService(&services_->cluster_svc);
  builder.RegisterService(&services_->watch);
  builder.RegisterService(&services_->lease);
  builder.RegisterService(&services_->lock);
  builder.RegisterService(&services_->election);
  builder.experimental().SetInterceptorCreators(decode_error_interceptors());
}

}  // namespace balsa::balsad
