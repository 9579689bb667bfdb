#include "balsad/lock_service.h"

#include "balsad/key_queue.h"
#include "balsad/queue_reactor.h"

namespace balsa::balsad {

namespace pb = ::etcdserverpb;
using ::balsa::kvpb::KvResult;

grpc::ServerUnaryReactor* LockService::Lock(grpc::CallbackServerContext*, const ::v3lockpb::LockRequest* req,
                                            ::v3lockpb::LockResponse* resp) {
  auto* reactor = new QueueReactor();
  ServiceContext* s = &s_;
  auto q = KeyQueue::acquire(s_, waiter_, req->name() + "/", req->lease(), "", false,
                             [s, reactor, resp](const grpc::Status& st, const QueueEntry& e) {
                               if (st.ok()) {
                                 resp->set_key(e.key);
                                 s->fill_header(resp->mutable_header(), e.header_revision);
                               }
                               reactor->Finish(st);
                             });
  reactor->set_queue(std::move(q));
  return reactor;
}

grpc::ServerUnaryReactor* LockService::Unlock(grpc::CallbackServerContext* ctx, const ::v3lockpb::UnlockRequest* req,
                                              ::v3lockpb::UnlockResponse* resp) {
  pb::DeleteRangeRequest d;
  d.set_key(req->key());
  if (const kv::Status v = kv::MvccStore::validate(d); !v.ok()) return finish_now(ctx, to_grpc(v));
  return s_.write(ctx, d, resp, [](KvResult&, ::v3lockpb::UnlockResponse*) {});
}

}  // namespace balsa::balsad
