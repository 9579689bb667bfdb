#include "balsad/key_queue.h"

#include <fmt/format.h>

#include <utility>

namespace balsa::balsad {

namespace pb = ::etcdserverpb;

std::string contender_key(const std::string& prefix, int64_t lease) {
  return prefix + fmt::format("{:x}", static_cast<uint64_t>(lease));
}

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::shared_ptr<KeyQueue> KeyQueue::acquire(ServiceContext& s, KeyWaiter& waiter, std::string prefix, int64_t lease,
                                            std::string value, bool update_value, Done done) {
  auto q = std::make_shared<KeyQueue>(s, waiter);
  q->start(std::move(prefix), lease, std::move(value), update_value, std::move(done));
  return q;
}

void KeyQueue::start(std::string prefix, int64_t lease, std::string value, bool update_value, Done done) {
  prefix_ = std::move(prefix);
  value_ = std::move(value);
  update_value_ = update_value;
  done_ = std::move(done);
  entry_.key = contender_key(prefix_, lease);
  // If the key is absent: put it (with the lease) ; else read it. Either way read the owner.
  pb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(entry_.key);
  cmp->set_target(pb::Compare::CREATE);
  cmp->set_result(pb::Compare::EQUAL);
  cmp->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(entry_.key);
  put->set_value(value_);
  put->set_lease(lease);
  txn.add_failure()->mutable_request_range()->set_key(entry_.key);
  auto self = shared_from_this();
  s_.submit(txn, [self](const grpc::Status& st, ::balsa::kvpb::KvResult& r) {
    // etcd's v3lock/v3election run this through an in-process client, whose errors reach the
    // caller as UNKNOWN with the KV error's text (e.g. a revoked lease): answer the same.
    if (!st.ok()) return self->finish(grpc::Status(grpc::StatusCode::UNKNOWN, st.error_message()));
    self->after_txn(r);
  });
}

void KeyQueue::after_txn(const ::balsa::kvpb::KvResult& r) {
  const pb::TxnResponse& t = r.txn();
  {
    std::lock_guard lk(mu_);
    if (finished_) {
      if (t.succeeded()) {  // canceled while the put was in flight: take the key back
        pb::DeleteRangeRequest d;
        d.set_key(entry_.key);
        s_.submit(d, [](const grpc::Status&, ::balsa::kvpb::KvResult&) {});
      }
      return;
    }
    if (t.succeeded()) {
      created_ = true;
      entry_.create_revision = t.header().revision();
    } else {
      const auto& kvs = t.responses(0).response_range().kvs();
      if (kvs.empty()) return;  // cannot happen: the compare said it exists at this revision
      entry_.create_revision = kvs[0].create_revision();
      if (update_value_ && kvs[0].value() != value_) {
        // etcd's Campaign with a key already there: Proclaim the new value, keeping the lease.
        pb::TxnRequest p;
        auto* cmp = p.add_compare();
        cmp->set_key(entry_.key);
        cmp->set_target(pb::Compare::CREATE);
        cmp->set_result(pb::Compare::EQUAL);
        cmp->set_create_revision(entry_.create_revision);
        auto* put = p.add_success()->mutable_request_put();
        put->set_key(entry_.key);
        put->set_value(value_);
        put->set_ignore_lease(true);
        auto self = shared_from_this();
        s_.submit(p, [self](const grpc::Status& st, ::balsa::kvpb::KvResult&) {
          if (!st.ok()) return self->finish(grpc::Status(grpc::StatusCode::UNKNOWN, st.error_message()));
          self->waiter_.post([self] { self->wait_predecessors(); });
        });
        return;
      }
    }
  }
  auto self = shared_from_this();
  waiter_.post([self] { self->wait_predecessors(); });
}

// etcd's waitDeletes: while some key of the prefix was created before ours, wait for the
// deletion of the newest such key.
void KeyQueue::wait_predecessors() {
  {
    std::lock_guard lk(mu_);
    if (finished_) return;
  }
  pb::RangeRequest q;
  q.set_key(prefix_);
  q.set_range_end(prefix_end(prefix_));
  q.set_max_create_revision(entry_.create_revision - 1);
  q.set_sort_target(pb::RangeRequest::CREATE);
  q.set_sort_order(pb::RangeRequest::DESCEND);
  q.set_limit(1);
  pb::RangeResponse resp;
  const kv::Result res = s_.sm().range(q, &resp);
  if (!res.ok()) return finish(to_grpc(res.status));
  if (resp.kvs_size() == 0) return check_own_key();
  const std::string pred = resp.kvs(0).key();
  auto self = shared_from_this();
  std::lock_guard lk(mu_);
  if (finished_) return;
  wait_ = waiter_.wait(
      pred, "", res.revision + 1, [](const mvccpb::Event& e) { return e.type() == mvccpb::Event::DELETE; },
      [self](std::optional<mvccpb::Event>) { self->wait_predecessors(); });  // deleted or canceled: re-read
}

void KeyQueue::check_own_key() {
  pb::RangeRequest q;
  q.set_key(entry_.key);
  pb::RangeResponse resp;
  const kv::Result res = s_.sm().range(q, &resp);
  if (!res.ok()) return finish(to_grpc(res.status));
  if (resp.kvs_size() == 0 || resp.kvs(0).create_revision() != entry_.create_revision) {
    return finish({grpc::StatusCode::FAILED_PRECONDITION,
                   "balsad: the contender key was deleted while waiting (its lease expired or was revoked)"});
  }
  {
    std::lock_guard lk(mu_);
    entry_.header_revision = res.revision;
  }
  finish(grpc::Status::OK);
}

void KeyQueue::finish(const grpc::Status& st) {
  Done done;
  QueueEntry entry;
  {
    std::lock_guard lk(mu_);
    if (finished_) return;
    finished_ = true;
    done = std::move(done_);
    entry = entry_;
    if (wait_) wait_->cancel();
    wait_.reset();
  }
  done(st, entry);
}

void KeyQueue::cancel() {
  bool remove = false;
  std::string key;
  {
    std::lock_guard lk(mu_);
    if (finished_) return;
    remove = created_;
    key = entry_.key;
  }
  if (remove) {
    pb::DeleteRangeRequest d;
    d.set_key(key);
    s_.submit(d, [](const grpc::Status&, ::balsa::kvpb::KvResult&) {});
  }
  finish({grpc::StatusCode::CANCELLED, "context canceled"});
}

}  // namespace balsa::balsad
