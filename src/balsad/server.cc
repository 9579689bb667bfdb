#include "balsad/server.h"

#include "balsad/cluster_service.h"
#include "balsad/kv_service.h"
#include "balsad/maintenance_service.h"
#include "balsad/service_context.h"
#include "balsad/watch_service.h"

namespace balsa::balsad {

struct ClientServices::Services {
  Services(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, kv::WatchHub& hub,
           std::chrono::milliseconds watch_progress_interval)
      : context(cluster, node, sm, &hub),
        kv(context),
        maintenance(context),
        cluster_svc(context),
        watch(context, hub, watch_progress_interval) {}
  ServiceContext context;
  KvService kv;
  MaintenanceService maintenance;
  ClusterService cluster_svc;
  WatchService watch;
};

ClientServices::ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, kv::WatchHub& hub,
                               std::chrono::milliseconds watch_progress_interval)
    : services_(std::make_unique<Services>(cluster, node, sm, hub, watch_progress_interval)) {}
ClientServices::~ClientServices() = default;

void ClientServices::register_on(grpc::ServerBuilder& builder) {
  builder.RegisterService(&services_->kv);
  builder.RegisterService(&services_->maintenance);
  builder.RegisterService(&services_->cluster_svc);
  builder.RegisterService(&services_->watch);
}

}  // namespace balsa::balsad
