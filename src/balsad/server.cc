#include "balsad/server.h"

#include "balsad/cluster_service.h"
#include "balsad/kv_service.h"
#include "balsad/lease_service.h"
#include "balsad/maintenance_service.h"
#include "balsad/service_context.h"

namespace balsa::balsad {

struct ClientServices::Services {
  Services(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, LeaseKeeper& keeper, int64_t min_ttl_s)
      : context(cluster, node, sm),
        keeper(keeper),
        kv(context),
        maintenance(context),
        cluster_svc(context),
        lease(context, keeper, min_ttl_s) {}
  ServiceContext context;
  LeaseKeeper& keeper;
  KvService kv;
  MaintenanceService maintenance;
  ClusterService cluster_svc;
  LeaseService lease;
};

ClientServices::ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, LeaseKeeper& keeper,
                               int64_t min_lease_ttl_s)
    : services_(std::make_unique<Services>(cluster, node, sm, keeper, min_lease_ttl_s)) {
  keeper.start(services_->context);
}
ClientServices::~ClientServices() { services_->keeper.stop(); }

void ClientServices::register_on(grpc::ServerBuilder& builder) {
  builder.RegisterService(&services_->kv);
  builder.RegisterService(&services_->maintenance);
  builder.RegisterService(&services_->cluster_svc);
  builder.RegisterService(&services_->lease);
}

}  // namespace balsa::balsad
