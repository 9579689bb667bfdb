#include "balsad/cluster_service.h"

#include <algorithm>

namespace balsa::balsad {

namespace pb = ::etcdserverpb;

grpc::ServerUnaryReactor* ClusterService::MemberList(grpc::CallbackServerContext* ctx, const pb::MemberListRequest*,
                                                     pb::MemberListResponse* resp) {
  s_.fill_header(resp->mutable_header(), 0);
  // Names and peer URLs come from --initial-cluster (the same on every member); client URLs
  // from what each member published through the log (this member's own from its flags until
  // its announcement applies). Listed by id, as etcd lists them.
  const std::vector<::balsa::kvpb::MemberAttributes> published = s_.sm().members();
  for (const Member& m : s_.cluster().members) {
    pb::Member* out = resp->add_members();
    out->set_id(m.member_id);
    out->set_name(m.name);
    for (const auto& u : m.peer_urls) out->add_peerurls(u);
    auto it = std::find_if(published.begin(), published.end(),
                           [&](const auto& a) { return a.member_id() == m.member_id; });
    if (it != published.end()) {
      for (const auto& u : it->client_urls()) out->add_clienturls(u);
    } else {
      for (const auto& u : m.client_urls) out->add_clienturls(u);
    }
  }
  return finish_now(ctx, grpc::Status::OK);
}

}  // namespace balsa::balsad
