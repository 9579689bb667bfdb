#include "balsad/kv_service.h"

namespace balsa::balsad {

namespace pb = ::etcdserverpb;
using ::balsa::kvpb::KvResult;

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* req,
                                           pb::RangeResponse* resp) {
  if (const kv::Status v = kv::MvccStore::validate(*req); !v.ok()) return finish_now(ctx, to_grpc(v));
  ServiceContext* s = &s_;
  return s->read(ctx, req->serializable(), [s, req, resp]() {
    const kv::Result res = s->sm().range(*req, resp);
    if (!res.ok()) return to_grpc(res.status);
    s->fill_header(resp->mutable_header(), res.revision);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* req,
                                         pb::PutResponse* resp) {
  if (const kv::Status v = kv::MvccStore::validate(*req); !v.ok()) return finish_now(ctx, to_grpc(v));
  return s_.write(ctx, *req, resp, [](KvResult& r, pb::PutResponse* out) { out->Swap(r.mutable_put()); });
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* ctx, const pb::DeleteRangeRequest* req,
                                                 pb::DeleteRangeResponse* resp) {
  if (const kv::Status v = kv::MvccStore::validate(*req); !v.ok()) return finish_now(ctx, to_grpc(v));
  return s_.write(ctx, *req, resp,
                  [](KvResult& r, pb::DeleteRangeResponse* out) { out->Swap(r.mutable_delete_range()); });
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx, const pb::TxnRequest* req,
                                         pb::TxnResponse* resp) {
  if (const kv::Status v = kv::MvccStore::validate(*req, s_.limits().max_txn_ops); !v.ok())
    return finish_now(ctx, to_grpc(v));
  return s_.write(ctx, *req, resp, [](KvResult& r, pb::TxnResponse* out) { out->Swap(r.mutable_txn()); });
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* ctx, const pb::CompactionRequest* req,
                                             pb::CompactionResponse* resp) {
  return s_.write(ctx, *req, resp,
                  [](KvResult& r, pb::CompactionResponse* out) { out->Swap(r.mutable_compaction()); });
}

}  // namespace balsa::balsad
