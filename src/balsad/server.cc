#include "balsad/server.h"

#include "balsad/cluster_service.h"
#include "balsad/kv_service.h"
#include "balsad/maintenance_service.h"
#include "balsad/service_context.h"

namespace balsa::balsad {

struct ClientServices::Services {
  Services(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, const ServiceLimits& limits)
      : context(cluster, node, sm, limits), kv(context), maintenance(context), cluster_svc(context) {}
  ServiceContext context;
  KvService kv;
  MaintenanceService maintenance;
  ClusterService cluster_svc;
};

ClientServices::ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm,
                               const ServiceLimits& limits)
    : services_(std::make_unique<Services>(cluster, node, sm, limits)) {}
ClientServices::~ClientServices() = default;
ServiceContext& ClientServices::context() { return services_->context; }

void ClientServices::register_on(grpc::ServerBuilder& builder) {
  builder.RegisterService(&services_->kv);
  builder.RegisterService(&services_->maintenance);
  builder.RegisterService(&services_->cluster_svc);
}

}  // namespace balsa::balsad
