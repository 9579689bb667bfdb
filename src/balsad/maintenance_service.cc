#include "balsad/maintenance_service.h"

namespace balsa::balsad {

namespace pb = ::etcdserverpb;

grpc::ServerUnaryReactor* MaintenanceService::Status(grpc::CallbackServerContext* ctx, const pb::StatusRequest*,
                                                     pb::StatusResponse* resp) {
  const NodeStatus st = s_.node().status();
  const kv::KvStateMachine::Revisions revs = s_.sm().revisions();
  s_.fill_header(resp->mutable_header(), revs.current);
  resp->mutable_header()->set_raft_term(st.term.value);
  resp->set_version(kEtcdVersion);
  // No bbolt file: report the in-memory store's record count as a rough size.
  const int64_t size =
      static_cast<int64_t>(s_.sm().read([](const kv::MvccStore& m) { return m.record_count(); })) * 64;
  resp->set_dbsize(size);
  resp->set_dbsizeinuse(size);
  resp->set_leader(s_.cluster().member_id_of(st.leader));
  resp->set_raftindex(st.commit.value);
  resp->set_raftterm(st.term.value);
  resp->set_raftappliedindex(revs.applied.value);
  resp->set_islearner(false);
  if (st.leader == kNoNode) resp->add_errors("etcdserver: no leader");
  return finish_now(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* ctx, const pb::HashKVRequest* req,
                                                     pb::HashKVResponse* resp) {
  const kv::Result res = s_.sm().hash_kv(req->revision(), resp);
  if (!res.ok()) return finish_now(ctx, to_grpc(res.status));
  s_.fill_header(resp->mutable_header(), resp->header().revision());
  return finish_now(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* MaintenanceService::MoveLeader(grpc::CallbackServerContext* ctx,
                                                         const pb::MoveLeaderRequest* req,
                                                         pb::MoveLeaderResponse* resp) {
  const NodeStatus st = s_.node().status();
  if (st.role != Role::kLeader) return finish_now(ctx, {grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: not leader"});
  for (const Member& m : s_.cluster().members) {
    if (m.member_id == req->targetid()) {
      s_.node().transfer_leadership(m.node_id);
      s_.fill_header(resp->mutable_header(), 0);
      return finish_now(ctx, grpc::Status::OK);
    }
  }
  // etcd: ErrBadLeaderTransferee is FAILED_PRECONDITION (rpctypes/error.go).
  return finish_now(ctx, {grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: bad leader transferee"});
}

}  // namespace balsa::balsad
