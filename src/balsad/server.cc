#include "balsad/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "kv/command.h"

namespace balsa::balsad {

namespace pb = ::etcdserverpb;

grpc::Status to_grpc_status(NodeError e) {
  switch (e) {
    case NodeError::kOk: return grpc::Status::OK;
    case NodeError::kNotLeader:
    case NodeError::kNoLeader: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader"};
    case NodeError::kTimeout: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: request timed out"};
    case NodeError::kLeadershipLost: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: leader changed"};
    case NodeError::kDropped: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: too many requests"};
    case NodeError::kTooLarge: return {grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large"};
    case NodeError::kStopped: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: server stopped"};
  }
  return {grpc::StatusCode::UNKNOWN, "balsad: unknown node error"};
}

namespace {
grpc::Status to_grpc(const kv::Status& s) {
  return s.ok() ? grpc::Status::OK : grpc::Status(grpc::StatusCode(static_cast<int>(s.code)), s.message);
}
}  // namespace

// A few threads that run linearizable reads once their ReadIndex barrier passed, so a large
// Range never runs on (and stalls) the node's loop thread, where read_index callbacks arrive.
class ReadPool {
 public:
  explicit ReadPool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~ReadPool() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard lk(mu_);
      queue_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    while (true) {
      std::function<void()> f;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and everything queued has run
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class ClientServices::Impl {
 public:
  Impl(const Cluster& cluster, Node& node, kv::KvStateMachine& sm)
      : cluster_(cluster), node_(node), sm_(sm), kv_(this), maintenance_(this), cluster_svc_(this) {}

  void fill_header(pb::ResponseHeader* h, int64_t revision) const {
    h->set_cluster_id(cluster_.cluster_id);
    h->set_member_id(cluster_.me().member_id);
    if (revision != 0) h->set_revision(revision);
    h->set_raft_term(node_.status().term.value);
  }

  // Proposes a write; `extract` moves the typed response out of the KvResult.
  template <typename Req, typename Resp, typename Extract>
  grpc::ServerUnaryReactor* write(grpc::CallbackServerContext* ctx, const Req& req, Resp* resp, Extract extract) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::string data;
    const kv::Status enc = kv::encode_command(kv::make_command(next_request_++, req), &data);
    if (!enc.ok()) {
      reactor->Finish(to_grpc(enc));
      return reactor;
    }
    node_.propose(std::move(data), [this, reactor, resp, extract](CommandResult r) {
      if (!r.ok()) {
        spdlog::debug("proposal failed: {} (leader hint {})", to_string(r.error), r.leader.value);
        reactor->Finish(to_grpc_status(r.error));
        return;
      }
      ::balsa::kvpb::KvResult result;
      if (!kv::decode_result(r.value, &result)) {
        reactor->Finish({grpc::StatusCode::INTERNAL, "balsad: undecodable result"});
        return;
      }
      const kv::Status st = kv::result_status(result);
      if (!st.ok()) {
        reactor->Finish(to_grpc(st));
        return;
      }
      extract(result, resp);
      fill_header(resp->mutable_header(), result.revision() != 0 ? result.revision() : resp->header().revision());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  // Runs `read` now (serializable) or after a ReadIndex barrier (linearizable).
  template <typename F>
  grpc::ServerUnaryReactor* read(grpc::CallbackServerContext* ctx, bool serializable, F read_fn) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (serializable) {
      reactor->Finish(read_fn());
      return reactor;
    }
    node_.read_index([this, reactor, read_fn](CommandResult r) {
      if (!r.ok()) {
        reactor->Finish(to_grpc_status(r.error));
        return;
      }
      reads_.post([reactor, read_fn] { reactor->Finish(read_fn()); });
    });
    return reactor;
  }

  class KvService final : public pb::KV::CallbackService {
   public:
    explicit KvService(Impl* s) : s_(s) {}
    grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* req,
                                    pb::RangeResponse* resp) override {
      Impl* s = s_;
      if (const kv::Status v = kv::MvccStore::validate(*req); !v.ok()) {
        auto* r = ctx->DefaultReactor();
        r->Finish(to_grpc(v));
        return r;
      }
      return s->read(ctx, req->serializable(), [s, req, resp]() {
        const kv::Result res = s->sm_.range(*req, resp);
        if (!res.ok()) return to_grpc(res.status);
        s->fill_header(resp->mutable_header(), res.revision);
        return grpc::Status::OK;
      });
    }
    grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* req,
                                  pb::PutResponse* resp) override {
      if (const kv::Status v = kv::MvccStore::validate(*req); !v.ok()) return fail(ctx, v);
      return s_->write(ctx, *req, resp, [](::balsa::kvpb::KvResult& r, pb::PutResponse* out) { out->Swap(r.mutable_put()); });
    }
    grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx, const pb::DeleteRangeRequest* req,
                                          pb::DeleteRangeResponse* resp) override {
      if (const kv::Status v = kv::MvccStore::validate(*req); !v.ok()) return fail(ctx, v);
      return s_->write(ctx, *req, resp,
                       [](::balsa::kvpb::KvResult& r, pb::DeleteRangeResponse* out) { out->Swap(r.mutable_delete_range()); });
    }
    grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const pb::TxnRequest* req,
                                  pb::TxnResponse* resp) override {
      if (const kv::Status v = kv::MvccStore::validate(*req, kv::kDefaultMaxTxnOps); !v.ok()) return fail(ctx, v);
      return s_->write(ctx, *req, resp, [](::balsa::kvpb::KvResult& r, pb::TxnResponse* out) { out->Swap(r.mutable_txn()); });
    }
    grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx, const pb::CompactionRequest* req,
                                      pb::CompactionResponse* resp) override {
      return s_->write(ctx, *req, resp,
                       [](::balsa::kvpb::KvResult& r, pb::CompactionResponse* out) { out->Swap(r.mutable_compaction()); });
    }

   private:
    static grpc::ServerUnaryReactor* fail(grpc::CallbackServerContext* ctx, const kv::Status& st) {
      auto* r = ctx->DefaultReactor();
      r->Finish(to_grpc(st));
      return r;
    }
    Impl* s_;
  };

  class MaintenanceService final : public pb::Maintenance::CallbackService {
   public:
    explicit MaintenanceService(Impl* s) : s_(s) {}
    grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const pb::StatusRequest*,
                                     pb::StatusResponse* resp) override {
      Impl* s = s_;
      const NodeStatus st = s->node_.status();
      const kv::KvStateMachine::Revisions revs = s->sm_.revisions();
      s->fill_header(resp->mutable_header(), revs.current);
      resp->mutable_header()->set_raft_term(st.term.value);
      resp->set_version(kEtcdVersion);
      // No bbolt file: report the in-memory store's record count as a rough size.
      const int64_t size = static_cast<int64_t>(s->sm_.read([](const kv::MvccStore& m) { return m.record_count(); })) * 64;
      resp->set_dbsize(size);
      resp->set_dbsizeinuse(size);
      resp->set_leader(s->cluster_.member_id_of(st.leader));
      resp->set_raftindex(st.commit.value);
      resp->set_raftterm(st.term.value);
      resp->set_raftappliedindex(revs.applied.value);
      resp->set_islearner(false);
      if (st.leader == kNoNode) resp->add_errors("etcdserver: no leader");
      auto* r = ctx->DefaultReactor();
      r->Finish(grpc::Status::OK);
      return r;
    }
    grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx, const pb::HashKVRequest* req,
                                     pb::HashKVResponse* resp) override {
      Impl* s = s_;
      auto* r = ctx->DefaultReactor();
      const kv::Result res = s->sm_.hash_kv(req->revision(), resp);
      if (!res.ok()) {
        r->Finish(to_grpc(res.status));
        return r;
      }
      s->fill_header(resp->mutable_header(), resp->header().revision());
      r->Finish(grpc::Status::OK);
      return r;
    }
    grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx, const pb::MoveLeaderRequest* req,
                                         pb::MoveLeaderResponse* resp) override {
      Impl* s = s_;
      auto* r = ctx->DefaultReactor();
      const NodeStatus st = s->node_.status();
      if (st.role != Role::kLeader) {
        r->Finish({grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: not leader"});
        return r;
      }
      for (const Member& m : s->cluster_.members) {
        if (m.member_id == req->targetid()) {
          s->node_.transfer_leadership(m.node_id);
          s->fill_header(resp->mutable_header(), 0);
          r->Finish(grpc::Status::OK);
          return r;
        }
      }
      r->Finish({grpc::StatusCode::NOT_FOUND, "etcdserver: bad leader transferee"});
      return r;
    }

   private:
    Impl* s_;
  };

  class ClusterService final : public pb::Cluster::CallbackService {
   public:
    explicit ClusterService(Impl* s) : s_(s) {}
    grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx, const pb::MemberListRequest*,
                                         pb::MemberListResponse* resp) override {
      Impl* s = s_;
      s->fill_header(resp->mutable_header(), 0);
      // Names and peer URLs come from --initial-cluster (the same on every member); client
      // URLs from what each member published through the log (this member's own from its
      // flags until its announcement applies). Listed by id, as etcd lists them.
      const std::vector<::balsa::kvpb::MemberAttributes> published = s->sm_.members();
      for (const Member& m : s->cluster_.members) {
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
      auto* r = ctx->DefaultReactor();
      r->Finish(grpc::Status::OK);
      return r;
    }

   private:
    Impl* s_;
  };

  const Cluster& cluster_;
  Node& node_;
  kv::KvStateMachine& sm_;
  std::atomic<uint64_t> next_request_{1};
  ReadPool reads_{2};
  KvService kv_;
  MaintenanceService maintenance_;
  ClusterService cluster_svc_;
};

ClientServices::ClientServices(const Cluster& cluster, Node& node, kv::KvStateMachine& sm)
    : impl_(std::make_unique<Impl>(cluster, node, sm)) {}
ClientServices::~ClientServices() = default;

void ClientServices::register_on(grpc::ServerBuilder& builder) {
  builder.RegisterService(&impl_->kv_);
  builder.RegisterService(&impl_->maintenance_);
  builder.RegisterService(&impl_->cluster_svc_);
}

}  // namespace balsa::balsad
