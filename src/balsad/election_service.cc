#include "balsad/election_service.h"

#include <deque>
#include <memory>
#include <mutex>

#include "balsad/key_queue.h"
#include "balsad/queue_reactor.h"

namespace balsa::balsad {

namespace pb = ::etcdserverpb;
namespace epb = ::v3electionpb;
using ::balsa::kvpb::KvResult;

namespace {

// etcd's errors (clientv3/concurrency, v3election); Go errors reach clients as UNKNOWN.
grpc::Status not_leader() { return {grpc::StatusCode::UNKNOWN, "election: not leader"}; }
grpc::Status no_leader() { return {grpc::StatusCode::UNKNOWN, "election: no leader"}; }
grpc::Status missing_leader_key() { return {grpc::StatusCode::UNKNOWN, "\"leader\" field must be provided"}; }

// The first contender under `prefix` (etcd's WithFirstCreate), read locally.
kv::Result first_created(ServiceContext& s, const std::string& prefix, pb::RangeResponse* resp) {
  pb::RangeRequest q;
  q.set_key(prefix);
  q.set_range_end(prefix_end(prefix));
  q.set_sort_target(pb::RangeRequest::CREATE);
  q.set_sort_order(pb::RangeRequest::ASCEND);
  q.set_limit(1);
  return s.sm().range(q, resp);
}

// A txn that runs `op` only while `leader` still holds its key (create revision unchanged).
pb::TxnRequest if_leader(const epb::LeaderKey& leader) {
  pb::TxnRequest t;
  auto* cmp = t.add_compare();
  cmp->set_key(leader.key());
  cmp->set_target(pb::Compare::CREATE);
  cmp->set_result(pb::Compare::EQUAL);
  cmp->set_create_revision(leader.rev());
  return t;
}

}  // namespace

grpc::ServerUnaryReactor* ElectionService::Campaign(grpc::CallbackServerContext*, const epb::CampaignRequest* req,
                                                    epb::CampaignResponse* resp) {
  auto* reactor = new QueueReactor();
  ServiceContext* s = &s_;
  auto q = KeyQueue::acquire(
      s_, waiter_, req->name() + "/", req->lease(), req->value(), true,
      [s, reactor, req, resp](const grpc::Status& st, const QueueEntry& e) {
        if (st.ok()) {
          s->fill_header(resp->mutable_header(), e.header_revision);
          auto* l = resp->mutable_leader();
          l->set_name(req->name());
          l->set_key(e.key);
          l->set_rev(e.create_revision);
          l->set_lease(req->lease());
        }
        reactor->Finish(st);
      });
  reactor->set_queue(std::move(q));
  return reactor;
}

grpc::ServerUnaryReactor* ElectionService::Proclaim(grpc::CallbackServerContext* ctx, const epb::ProclaimRequest* req,
                                                    epb::ProclaimResponse* resp) {
  if (!req->has_leader()) return finish_now(ctx, missing_leader_key());
  pb::TxnRequest t = if_leader(req->leader());
  auto* put = t.add_success()->mutable_request_put();
  put->set_key(req->leader().key());
  put->set_value(req->value());
  put->set_ignore_lease(true);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  ServiceContext* s = &s_;
  s_.submit(t, [s, reactor, resp](const grpc::Status& st, KvResult& r) {
    if (!st.ok()) return reactor->Finish(st);
    if (!r.txn().succeeded()) return reactor->Finish(not_leader());
    s->fill_header(resp->mutable_header(), r.revision());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* ElectionService::Leader(grpc::CallbackServerContext* ctx, const epb::LeaderRequest* req,
                                                  epb::LeaderResponse* resp) {
  ServiceContext* s = &s_;
  return s_.read(ctx, false, [s, req, resp]() {
    pb::RangeResponse r;
    const kv::Result res = first_created(*s, req->name() + "/", &r);
    if (!res.ok()) return to_grpc(res.status);
    if (r.kvs_size() == 0) return no_leader();
    *resp->mutable_kv() = r.kvs(0);
    s->fill_header(resp->mutable_header(), res.revision);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* ElectionService::Resign(grpc::CallbackServerContext* ctx, const epb::ResignRequest* req,
                                                  epb::ResignResponse* resp) {
  if (!req->has_leader()) return finish_now(ctx, missing_leader_key());
  pb::TxnRequest t = if_leader(req->leader());
  t.add_success()->mutable_request_delete_range()->set_key(req->leader().key());
  // etcd's Resign of a key that no longer leads is not an error.
  return s_.write(ctx, t, resp, [](KvResult&, epb::ResignResponse*) {});
}

namespace {

// Observe: the leader now, then every change of leader or of its value. Its steps run on the
// KeyWaiter's thread; the reactor only writes, one response at a time.
class Observer : public std::enable_shared_from_this<Observer> {
 public:
  Observer(ServiceContext& s, KeyWaiter& w, std::string prefix) : s_(s), w_(w), prefix_(std::move(prefix)) {}

  grpc::ServerWriteReactor<epb::LeaderResponse>* reactor = nullptr;  // guarded by mu; null once done

  void step() {
    pb::RangeResponse r;
    const kv::Result res = first_created(s_, prefix_, &r);
    auto self = shared_from_this();
    std::lock_guard lk(mu);
    if (reactor == nullptr) return;
    if (!res.ok()) return fail(to_grpc(res.status));
    if (r.kvs_size() == 0) {  // no leader: wait for the next contender
      wait_ = w_.wait(prefix_, prefix_end(prefix_), res.revision + 1,
                      [](const mvccpb::Event& e) { return e.type() == mvccpb::Event::PUT; },
                      [self](std::optional<mvccpb::Event>) { self->step(); });
      return;
    }
    const mvccpb::KeyValue& kv = r.kvs(0);
    if (kv.key() != last_key_ || kv.mod_revision() != last_mod_) send(kv, res.revision);
    watch_leader(kv.key(), res.revision + 1);
  }

  void write_done(bool ok) {
    std::lock_guard lk(mu);
    writing_ = false;
    if (reactor == nullptr) return;
    if (!ok) return fail({grpc::StatusCode::CANCELLED, "stream broken"});
    pump();
  }

  void cancel() {
    std::lock_guard lk(mu);
    fail({grpc::StatusCode::CANCELLED, "context canceled"});
  }

  void detach() {
    std::lock_guard lk(mu);
    reactor = nullptr;
    if (wait_) wait_->cancel();
    wait_.reset();
  }

  std::mutex mu;

 private:
  // Caller holds mu. Follows the leader's key: a new value is sent, a delete means a new leader.
  void watch_leader(const std::string& key, int64_t from) {
    auto self = shared_from_this();
    wait_ = w_.wait(key, "", from, [](const mvccpb::Event&) { return true; },
                    [self, key](std::optional<mvccpb::Event> ev) {
                      if (!ev || ev->type() == mvccpb::Event::DELETE) return self->step();
                      std::lock_guard lk(self->mu);
                      if (self->reactor == nullptr) return;
                      self->send(ev->kv(), ev->kv().mod_revision());
                      self->watch_leader(key, ev->kv().mod_revision() + 1);
                    });
  }
  void send(const mvccpb::KeyValue& kv, int64_t revision) {
    last_key_ = kv.key();
    last_mod_ = kv.mod_revision();
    epb::LeaderResponse resp;
    *resp.mutable_kv() = kv;
    s_.fill_header(resp.mutable_header(), revision);
    queue_.push_back(std::move(resp));
    pump();
  }
  void pump() {
    if (writing_ || queue_.empty() || reactor == nullptr) return;
    out_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    reactor->StartWrite(&out_);
  }
  void fail(const grpc::Status& st) {
    if (finished_ || reactor == nullptr) return;
    finished_ = true;
    reactor->Finish(st);
  }

  ServiceContext& s_;
  KeyWaiter& w_;
  const std::string prefix_;
  std::shared_ptr<KeyWaiter::Wait> wait_;
  std::deque<epb::LeaderResponse> queue_;
  epb::LeaderResponse out_;
  bool writing_ = false, finished_ = false;
  std::string last_key_;
  int64_t last_mod_ = 0;
};

class ObserveReactor final : public grpc::ServerWriteReactor<epb::LeaderResponse> {
 public:
  explicit ObserveReactor(std::shared_ptr<Observer> o) : o_(std::move(o)) {}
  void OnWriteDone(bool ok) override { o_->write_done(ok); }
  void OnCancel() override { o_->cancel(); }
  void OnDone() override {
    o_->detach();
    delete this;
  }

 private:
  std::shared_ptr<Observer> o_;
};

}  // namespace

grpc::ServerWriteReactor<epb::LeaderResponse>* ElectionService::Observe(grpc::CallbackServerContext*,
                                                                        const epb::LeaderRequest* req) {
  auto o = std::make_shared<Observer>(s_, waiter_, req->name() + "/");
  auto* r = new ObserveReactor(o);
  o->reactor = r;
  waiter_.post([o] { o->step(); });
  return r;
}

}  // namespace balsa::balsad
