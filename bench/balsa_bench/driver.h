// balsa-bench's load driver: closed-loop clients over gRPC's asynchronous C++ API.
//
// Each client keeps one request in flight on one of --conns channels (each its own TCP
// connection); --threads completion-queue threads serve all clients, so a thousand clients cost
// a thousand small state machines, not a thousand threads. A shared slot counter hands out
// request numbers: it bounds --total, paces --rate (request k is not sent before t0 + k/rate),
// and numbers keys for the sequential preload. Latency is measured per request from the moment
// it is handed to gRPC to its completion; with --rate, a request that waits for its slot is not
// charged for the wait.
//
// The watch workload opens --watchers streams (Watch on the key prefix) before the puts start;
// every put carries its send time in the first 8 bytes of its value, so each watcher measures
// put-to-event latency, and events that never arrive are reported as missing.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "histogram.h"
#include "keys.h"

namespace balsa::bench {

enum class Op { kPut = 0, kRange, kTxnPut, kDelete };
inline constexpr int kOpCount = 4;
const char* op_name(Op op);

enum class Workload { kPut, kRange, kTxnPut, kDelete, kMixed, kWatch };
const char* workload_name(Workload w);

struct Options {
  std::vector<std::string> endpoints;  // host:port (an http:// prefix is accepted)
  Workload workload = Workload::kPut;
  int conns = 1;
  int clients = 1;
  int threads = 0;  // 0: min(conns, hardware threads)
  size_t key_size = 16;
  size_t value_size = 256;
  uint64_t key_space = 100000;
  Distribution dist = Distribution::kUniform;
  double zipf_theta = 0.99;
  std::string key_prefix = "bb/";
  uint64_t total = 0;       // requests (0: use duration)
  double duration_s = 0;    // seconds (0: use total)
  double rate = 0;          // requests/s over all clients (0: as fast as the server answers)
  bool serializable = false;
  double read_ratio = 0.9;  // mixed: share of ranges
  int txn_ops = 1;          // txn-put: puts per transaction
  int watchers = 1;         // watch: streams
  double timeout_s = 10;    // per request
  double dial_timeout_s = 5;
  double watch_drain_s = 5;  // watch: how long to wait for the last events
  bool preload = false;     // put every key once before measuring
  uint64_t seed = 1;
  bool progress = true;
};

struct Result {
  Histogram per_op[kOpCount];
  Histogram all;
  Histogram watch_latency;
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::map<int, uint64_t> errors;         // by grpc::StatusCode
  std::map<int, std::string> error_text;  // one message per code
  uint64_t watch_events = 0;
  uint64_t watch_expected = 0;
  double elapsed_s = 0;
  double client_cpu_s = 0;
  std::string fatal;  // setup failed (nothing measured)

  void add_error(int code, const std::string& text);
};

// Creates one channel per --conns, spread over the endpoints, and waits until each is
// connected. On failure returns an empty vector and sets *error.
std::vector<std::shared_ptr<grpc::Channel>> connect(const Options& opt, std::string* error);

// Runs the workload (after the preload, if asked) and returns what it measured. Never blocks
// past duration (or the last request) + timeout + watch drain.
Result run(const Options& opt, const std::vector<std::shared_ptr<grpc::Channel>>& channels);

}  // namespace balsa::bench
