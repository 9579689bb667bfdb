#include "balsad/lease_service.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>

namespace balsa::balsad {

namespace pb = ::etcdserverpb;
using ::balsa::kvpb::KvResult;

int64_t LeaseService::min_ttl_seconds(int election_timeout_ms, int heartbeat_interval_ms) {
  // etcd: minTTL = (3 * ElectionTicks / 2) heartbeats, rounded up to whole seconds.
  const int hb = std::max(1, heartbeat_interval_ms);
  const int ticks = std::max(1, election_timeout_ms / hb);
  const int64_t ms = int64_t{3 * ticks / 2} * hb;
  return std::max<int64_t>(1, (ms + 999) / 1000);
}

int64_t LeaseService::next_id() {
  // etcd's idutil.Generator: the member's low 16 bits, 40 bits of milliseconds, 8 counter
  // bits; the counter carries into the time bits. The sign bit is cleared (ids are positive).
  const uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  const uint64_t base = ((s_.cluster().me().member_id & 0xffff) << 48) | ((ms & ((uint64_t{1} << 40) - 1)) << 8);
  for (;;) {
    const uint64_t id = (base + id_counter_.fetch_add(1)) & ~(uint64_t{1} << 63);
    if (id != 0) return static_cast<int64_t>(id);
  }
}

grpc::ServerUnaryReactor* LeaseService::LeaseGrant(grpc::CallbackServerContext* ctx, const pb::LeaseGrantRequest* req,
                                                   pb::LeaseGrantResponse* resp) {
  pb::LeaseGrantRequest cmd = *req;
  if (cmd.id() == 0) cmd.set_id(next_id());
  if (cmd.ttl() < min_ttl_s_) cmd.set_ttl(min_ttl_s_);
  return s_.write(ctx, cmd, resp, [](KvResult& r, pb::LeaseGrantResponse* out) { out->Swap(r.mutable_lease_grant()); });
}

grpc::ServerUnaryReactor* LeaseService::LeaseRevoke(grpc::CallbackServerContext* ctx,
                                                    const pb::LeaseRevokeRequest* req, pb::LeaseRevokeResponse* resp) {
  return s_.write(ctx, *req, resp,
                  [](KvResult& r, pb::LeaseRevokeResponse* out) { out->Swap(r.mutable_lease_revoke()); });
}

grpc::ServerUnaryReactor* LeaseService::LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                                        const pb::LeaseTimeToLiveRequest* req,
                                                        pb::LeaseTimeToLiveResponse* resp) {
  ServiceContext* s = &s_;
  LeaseKeeper* keeper = &keeper_;
  return s->read(ctx, false, [s, keeper, req, resp]() {
    const kv::Result res = s->sm().read(
        [&](const kv::MvccStore& store) { return store.lease_time_to_live(*req, resp); });
    if (res.status == kv::errors::lease_not_found()) {
      // etcd answers an unknown lease with TTL -1, not an error.
      resp->Clear();
      resp->set_id(req->id());
      resp->set_ttl(-1);
      s->fill_header(resp->mutable_header(), s->sm().revisions().current);
      return grpc::Status::OK;
    }
    if (!res.ok()) return to_grpc(res.status);
    resp->set_ttl(keeper->remaining_s(req->id(), resp->grantedttl()));
    s->fill_header(resp->mutable_header(), res.revision);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* LeaseService::LeaseLeases(grpc::CallbackServerContext* ctx, const pb::LeaseLeasesRequest*,
                                                    pb::LeaseLeasesResponse* resp) {
  ServiceContext* s = &s_;
  return s->read(ctx, false, [s, resp]() {
    const kv::Result res = s->sm().read([&](const kv::MvccStore& store) { return store.lease_leases(resp); });
    s->fill_header(resp->mutable_header(), res.revision);
    return grpc::Status::OK;
  });
}

namespace {

// One LeaseKeepAlive stream. Each request becomes a replicated renew; responses go back in the
// order the renewals applied, one write at a time. The reactor deletes itself once gRPC is done
// with it (OnDone) and no renewal is still in flight.
class KeepAliveReactor final : public grpc::ServerBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse> {
 public:
  explicit KeepAliveReactor(ServiceContext& s) : s_(s) { StartRead(&req_); }

  void OnReadDone(bool ok) override {
    std::unique_lock lk(mu_);
    if (!ok) {  // the client closed its side (or the call broke)
      reads_done_ = true;
      if (pending_ == 0 && queue_.empty()) request_finish(grpc::Status::OK);
      progress();
      return;
    }
    ++pending_;
    ::balsa::kvpb::LeaseRenew renew;
    renew.set_id(req_.id());
    lk.unlock();
    s_.submit(renew, [this](const grpc::Status& st, KvResult& result) { renewed(st, result); });
    StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lk(mu_);
    writing_ = false;
    if (!ok) {
      request_finish({grpc::StatusCode::CANCELLED, "balsad: keep-alive stream broken"});
    } else if (reads_done_ && pending_ == 0 && queue_.empty()) {
      request_finish(grpc::Status::OK);
    }
    progress();
  }

  void OnDone() override {
    std::unique_lock lk(mu_);
    done_ = true;
    if (pending_ == 0) {
      lk.unlock();
      delete this;
    }
  }

 private:
  void renewed(const grpc::Status& st, KvResult& result) {
    std::unique_lock lk(mu_);
    --pending_;
    if (!done_) {
      if (!st.ok()) {
        request_finish(st);
      } else {
        pb::LeaseKeepAliveResponse resp;
        resp.Swap(result.mutable_lease_renew());
        s_.fill_header(resp.mutable_header(), result.revision());
        queue_.push_back(std::move(resp));
      }
      if (reads_done_ && pending_ == 0 && queue_.empty() && !writing_) request_finish(grpc::Status::OK);
      progress();
    }
    if (done_ && pending_ == 0) {
      lk.unlock();
      delete this;
    }
  }

  // Caller holds mu_.
  void request_finish(const grpc::Status& st) {
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = st;
    if (!st.ok()) queue_.clear();
  }
  void progress() {
    if (finished_ || done_) return;
    if (!writing_ && !queue_.empty()) {
      out_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      StartWrite(&out_);
      return;
    }
    if (finish_requested_ && !writing_) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  ServiceContext& s_;
  pb::LeaseKeepAliveRequest req_;
  std::mutex mu_;
  std::deque<pb::LeaseKeepAliveResponse> queue_;
  pb::LeaseKeepAliveResponse out_;
  int pending_ = 0;
  bool reads_done_ = false, writing_ = false, finish_requested_ = false, finished_ = false, done_ = false;
  grpc::Status finish_status_;
};

}  // namespace

grpc::ServerBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>* LeaseService::LeaseKeepAlive(
    grpc::CallbackServerContext*) {
  return new KeepAliveReactor(s_);
}

}  // namespace balsa::balsad
