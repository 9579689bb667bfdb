// What every client-facing service of balsad shares: the cluster's identity, the Node, the KV
// state machine, and the two ways a request travels. A write is proposed through the Node (any
// member accepts it: followers forward to the leader) and completes when applied here; a
// linearizable read waits for a ReadIndex barrier and then reads the local state machine on the
// read pool, never on the Node's loop thread.
//
// Each service (KV, Maintenance, Cluster, ...) lives in a file of its own and holds a reference
// to one ServiceContext, which must outlive it.
#pragma once

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "balsad/config.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "kv/command.h"
#include "kv/kv_state_machine.h"
#include "runtime/node.h"

namespace balsa::balsad {

inline constexpr const char* kEtcdVersion = "3.4.23";

// etcd's gRPC error for a Node failure (rpctypes/error.go wording).
grpc::Status to_grpc_status(NodeError e);

// A KV-layer status as a gRPC status (kv::Code is numerically grpc::StatusCode).
inline grpc::Status to_grpc(const kv::Status& s) {
  return s.ok() ? grpc::Status::OK : grpc::Status(grpc::StatusCode(static_cast<int>(s.code)), s.message);
}

// Finishes a unary call at once with `st`.
inline grpc::ServerUnaryReactor* finish_now(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(st);
  return r;
}

// A few threads that run linearizable reads once their ReadIndex barrier passed, so a large
// Range never runs on (and stalls) the node's loop thread, where read_index callbacks arrive.
class ReadPool {
 public:
  explicit ReadPool(size_t threads);
  ~ReadPool();
  void post(std::function<void()> f);

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// etcd's request limits (--max-request-bytes, --max-txn-ops) and the member's data dir.
struct ServiceLimits {
  size_t max_request_bytes = kv::kDefaultMaxRequestBytes;
  int max_txn_ops = kv::kDefaultMaxTxnOps;
  std::string data_dir;  // Status sizes; Maintenance.Snapshot spools its image here
};

class ServiceContext {
 public:
  ServiceContext(const Cluster& cluster, Node& node, kv::KvStateMachine& sm, const ServiceLimits& limits = {})
      : cluster_(cluster), node_(node), sm_(sm), limits_(limits) {}

  const ServiceLimits& limits() const { return limits_; }

  const Cluster& cluster() const { return cluster_; }
  Node& node() { return node_; }
  kv::KvStateMachine& sm() { return sm_; }

  void fill_header(::etcdserverpb::ResponseHeader* h, int64_t revision) const {
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
    const kv::Status enc = kv::encode_command(kv::make_command(next_request_++, req), &data, limits_.max_request_bytes);
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

  // Runs `read_fn` now (serializable) or after a ReadIndex barrier (linearizable).
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

 private:
  const Cluster& cluster_;
  Node& node_;
  kv::KvStateMachine& sm_;
  const ServiceLimits limits_;
  std::atomic<uint64_t> next_request_{1};
  ReadPool reads_{2};
};

}  // namespace balsa::balsad
