// etcd's Watch service (etcdserverpb.Watch/Watch): one bidirectional stream per call, many
// watches per stream, over the member's kv::WatchHub (src/kv/watch_hub.h), which holds the
// semantics; this file only translates WatchRequest / WatchResponse (etcd v3rpc/watch.go's
// recvLoop and sendLoop) and applies back-pressure: a stream whose queue is over the hub's bound
// stops reading requests until the client has read its responses.
//
// The service owns the hub's runner thread (catch-up, delivery wake-ups, progress ticks).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "balsad/service_context.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "kv/watch_hub.h"

namespace balsa::balsad {

// A Go duration as etcd's flags take it ("10m", "500ms", "1m30s", "2h"); nullopt if malformed
// or negative.
std::optional<std::chrono::milliseconds> parse_go_duration(const std::string& s);

class WatchService final : public ::etcdserverpb::Watch::CallbackService {
 public:
  // `progress_interval`: etcd's --experimental-watch-progress-notify-interval (default 10 min).
  WatchService(ServiceContext& s, kv::WatchHub& hub, std::chrono::milliseconds progress_interval);
  ~WatchService() override;

  grpc::ServerBidiReactor<::etcdserverpb::WatchRequest, ::etcdserverpb::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override;

 private:
  ServiceContext& s_;
  kv::WatchHub& hub_;
  std::unique_ptr<kv::WatchHubRunner> runner_;
};

}  // namespace balsa::balsad
