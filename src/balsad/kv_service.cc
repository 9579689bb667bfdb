#include "balsad/kv_service.h"

#include "balsad/decode_error_interceptor.h"

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

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req_bytes,
                                         grpc::ByteBuffer* resp_bytes) {
  std::vector<grpc::Slice> slices;
  if (!req_bytes->Dump(&slices).ok()) return finish_now(ctx, {grpc::StatusCode::INTERNAL, kUnmarshalError});
  std::string bytes;
  for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  // Owned by the completion callback (through `finish`) until the response is serialized.
  struct Call {
    pb::TxnRequest req;
    pb::TxnResponse resp;
  };
  auto call = std::make_shared<Call>();
  if (!kv::decode_txn_request(bytes, &call->req)) {
    // Too deep for the raised limit (then certainly too many ops, as etcd says), or garbage.
    if (kv::wire_txn_nesting(bytes, kv::kMaxTxnNesting) > kv::kMaxTxnNesting)
      return finish_now(ctx, to_grpc(kv::errors::too_many_ops()));
    return finish_now(ctx, {grpc::StatusCode::INTERNAL, kUnmarshalError});
  }
  if (const kv::Status v = kv::MvccStore::validate(call->req, kv::kDefaultMaxTxnOps); !v.ok())
    return finish_now(ctx, to_grpc(v));
  return s_.write(
      ctx, call->req, &call->resp, [](KvResult& r, pb::TxnResponse* out) { out->Swap(r.mutable_txn()); },
      [call, resp_bytes] {
        bool own = false;
        return grpc::SerializationTraits<pb::TxnResponse>::Serialize(call->resp, resp_bytes, &own);
      });
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* ctx, const pb::CompactionRequest* req,
                                             pb::CompactionResponse* resp) {
  return s_.write(ctx, *req, resp,
                  [](KvResult& r, pb::CompactionResponse* out) { out->Swap(r.mutable_compaction()); });
}

}  // namespace balsa::balsad
