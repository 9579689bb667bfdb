// etcd's KV service: Range, Put, DeleteRange, Txn, Compact.
#pragma once

#include "balsad/service_context.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace balsa::balsad {

// Txn is a raw-bytes method: gRPC would decode it with protobuf's default recursion limit,
// which stops at 49 nested levels where etcd allows 128 (see kv/command.h).
class KvService final : public ::etcdserverpb::KV::WithRawCallbackMethod_Txn<::etcdserverpb::KV::CallbackService> {
 public:
  explicit KvService(ServiceContext& s) : s_(s) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const ::etcdserverpb::RangeRequest* req,
                                  ::etcdserverpb::RangeResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const ::etcdserverpb::PutRequest* req,
                                ::etcdserverpb::PutResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const ::etcdserverpb::DeleteRangeRequest* req,
                                        ::etcdserverpb::DeleteRangeResponse* resp) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx, const ::etcdserverpb::CompactionRequest* req,
                                    ::etcdserverpb::CompactionResponse* resp) override;

 private:
  ServiceContext& s_;
};

}  // namespace balsa::balsad
