// balsad's HTTP/1.1 endpoints, served on every client URL (and /metrics + /health on the
// --listen-metrics-urls), as etcd serves them:
//   GET /health   {"health":"true"} (200) when this member sees a leader, else {"health":"false"} (503)
//   GET /version  {"etcdserver":"3.4.23","etcdcluster":"3.4.0"}
//   GET /metrics  Prometheus text: etcd's metric names where balsad has the same quantity
//   POST /v3/...  etcd 3.4's JSON gateway (grpc-gateway shapes: bytes as base64, int64 as strings)
#pragma once

#include "balsad/client_listener.h"
#include "balsad/service_context.h"

namespace balsa::balsad {

// /health and /metrics (and /version when `version` is set).
void add_probe_routes(HttpFront& http, ServiceContext& ctx, bool version);

// etcd 3.4's gateway routes (also under /v3beta/), each a call on `channel` (an in-process
// channel to balsad's own gRPC server, as etcd's gateway dials itself), so every validation and
// error is the gRPC service's: POST /v3/kv/{range,put,deleterange,txn,compaction},
// /v3/maintenance/{status,hash,alarm,defragment}, /v3/cluster/member/list.
// Request and response bodies are protobuf JSON with etcd's field names (proto names); errors
// are grpc-gateway's {"error","message","code"} with the HTTP status for the gRPC code.
// Lease, watch and auth routes come with those services.
void add_gateway_routes(HttpFront& http, std::shared_ptr<grpc::Channel> channel);

// The /metrics body.
std::string render_metrics(ServiceContext& ctx);

}  // namespace balsa::balsad
