// balsa-bench: a load generator for any etcd v3 server (balsad, etcd), over gRPC's async API.
//
//   balsa-bench --endpoints 127.0.0.1:2379 --clients 64 --conns 8 --total 100000 put
//   balsa-bench --endpoints ... --duration 10 range --consistency s --preload
//   balsa-bench --endpoints ... --duration 10 --json mixed --read-ratio 0.9
//
// Exit status: 0 when every request succeeded; 1 when any failed (the errors are listed by gRPC
// status); 2 on bad flags or when an endpoint cannot be reached.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "driver.h"

namespace {

using namespace balsa::bench;

std::string code_name(int c) {
  static const char* names[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  if (c >= 0 && c < static_cast<int>(std::size(names))) return names[c];
  return "CODE_" + std::to_string(c);
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

nlohmann::json latency_json(const Histogram& h) {
  return {{"count", h.count()},         {"p50", ms(h.quantile(0.50))},   {"p90", ms(h.quantile(0.90))},
          {"p99", ms(h.quantile(0.99))}, {"p99_9", ms(h.quantile(0.999))}, {"max", ms(h.max())},
          {"min", ms(h.min())},          {"mean", h.mean() / 1e6}};
}

nlohmann::json to_json(const Options& o, const Result& r) {
  nlohmann::json j;
  j["workload"] = workload_name(o.workload);
  j["endpoints"] = o.endpoints;
  j["conns"] = o.conns;
  j["clients"] = o.clients;
  j["key_size"] = o.key_size;
  j["value_size"] = o.value_size;
  j["key_space"] = o.key_space;
  j["distribution"] = o.dist == Distribution::kZipf ? "zipf" : o.dist == Distribution::kSequential ? "sequential" : "uniform";
  j["consistency"] = o.serializable ? "s" : "l";
  j["rate"] = o.rate;
  j["ok"] = r.ok;
  j["failed"] = r.failed;
  j["elapsed_s"] = r.elapsed_s;
  j["throughput_ops_s"] = r.elapsed_s > 0 ? static_cast<double>(r.ok) / r.elapsed_s : 0.0;
  j["client_cpu_s"] = r.client_cpu_s;
  j["latency_ms"] = latency_json(r.all);
  nlohmann::json ops = nlohmann::json::object();
  for (int i = 0; i < kOpCount; ++i)
    if (r.per_op[i].count()) ops[op_name(static_cast<Op>(i))] = latency_json(r.per_op[i]);
  j["ops"] = ops;
  nlohmann::json errs = nlohmann::json::object();
  for (const auto& [code, n] : r.errors) errs[code_name(code)] = {{"count", n}, {"example", r.error_text.at(code)}};
  j["errors"] = errs;
  if (o.workload == Workload::kWatch) {
    j["watch"] = {{"watchers", o.watchers},
                  {"events", r.watch_events},
                  {"expected", r.watch_expected},
                  {"event_latency_ms", latency_json(r.watch_latency)}};
  }
  if (!r.fatal.empty()) j["fatal"] = r.fatal;
  return j;
}

void print_text(const Options& o, const Result& r) {
  const double tput = r.elapsed_s > 0 ? static_cast<double>(r.ok) / r.elapsed_s : 0.0;
  std::printf("%s: %llu ok, %llu failed in %.2f s: %.0f ops/s (%d clients, %d conns; client CPU %.2f s)\n",
              workload_name(o.workload), static_cast<unsigned long long>(r.ok),
              static_cast<unsigned long long>(r.failed), r.elapsed_s, tput, o.clients, o.conns, r.client_cpu_s);
  std::printf("%-14s %10s %8s %8s %8s %8s %8s %8s\n", "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max",
              "mean");
  auto row = [](const char* name, const Histogram& h) {
    std::printf("%-14s %10llu %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n", name,
                static_cast<unsigned long long>(h.count()), ms(h.quantile(0.5)), ms(h.quantile(0.9)),
                ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.max()), h.mean() / 1e6);
  };
  for (int i = 0; i < kOpCount; ++i)
    if (r.per_op[i].count()) row(op_name(static_cast<Op>(i)), r.per_op[i]);
  if (o.workload == Workload::kWatch) {
    row("watch event", r.watch_latency);
    std::printf("watch: %llu of %llu events on %d streams\n", static_cast<unsigned long long>(r.watch_events),
                static_cast<unsigned long long>(r.watch_expected), o.watchers);
  }
  for (const auto& [code, n] : r.errors)
    std::printf("errors: %s x%llu (%s)\n", code_name(code).c_str(), static_cast<unsigned long long>(n),
                r.error_text.at(code).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"balsa-bench: etcd v3 load generator (balsad, etcd)"};
  app.set_help_all_flag("--help-all", "Help for every workload");
  app.require_subcommand(1, 1);
  std::string endpoints = "127.0.0.1:2379";
  app.add_option("--endpoints", endpoints, "Comma-separated host:port list (http:// accepted)")->capture_default_str();
  app.add_option("--conns", o.conns, "gRPC connections (spread over the endpoints)")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--clients", o.clients, "Concurrent clients, one request in flight each")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--threads", o.threads, "Completion-queue threads (0: min(conns, cores))")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--key-size", o.key_size, "Key size in bytes (prefix included)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--val-size,--value-size", o.value_size, "Value size in bytes")->capture_default_str()->check(CLI::Range(0, 1 << 24));
  app.add_option("--key-space", o.key_space, "Number of distinct keys")->capture_default_str()->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  std::string dist = "uniform";
  app.add_option("--key-dist", dist, "Key distribution (sequential: request k uses key k mod key-space)")->capture_default_str()->check(CLI::IsMember({"uniform", "zipf", "sequential"}));
  app.add_option("--zipf-theta", o.zipf_theta, "Zipf exponent")->capture_default_str()->check(CLI::Range(0.01, 0.999));
  app.add_option("--key-prefix", o.key_prefix, "Prefix of every key")->capture_default_str();
  auto* total = app.add_option("--total", o.total, "Number of requests")->check(CLI::PositiveNumber);
  auto* duration = app.add_option("--duration", o.duration_s, "Seconds to run")->check(CLI::PositiveNumber);
  total->excludes(duration);
  app.add_option("--rate", o.rate, "Requests per second over all clients (0: unlimited)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--timeout", o.timeout_s, "Per-request deadline, seconds")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--dial-timeout", o.dial_timeout_s, "Seconds to wait for each connection")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--preload", o.preload, "Put every key of the key space once before measuring (not measured)");
  app.add_option("--seed", o.seed, "Seed of the key and operation choices")->capture_default_str();
  bool json = false, quiet = false;
  app.add_flag("--json", json, "Print the results as JSON on stdout");
  app.add_flag("-q,--quiet", quiet, "No progress line");

  auto* put = app.add_subcommand("put", "Put random keys");
  std::string consistency = "l";
  auto* range = app.add_subcommand("range", "Get single random keys");
  range->add_option("--consistency", consistency, "l (linearizable) or s (serializable)")
      ->capture_default_str()
      ->check(CLI::IsMember({"l", "s"}));
  auto* txn = app.add_subcommand("txn-put", "Transactions of --txn-ops puts each");
  txn->add_option("--txn-ops", o.txn_ops, "Puts per transaction")->capture_default_str()->check(CLI::Range(1, 128));
  auto* del = app.add_subcommand("delete", "Delete single random keys");
  auto* mixed = app.add_subcommand("mixed", "Ranges and puts on the same keys");
  mixed->add_option("--read-ratio", o.read_ratio, "Share of ranges")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  mixed->add_option("--consistency", consistency, "l or s")->capture_default_str()->check(CLI::IsMember({"l", "s"}));
  auto* watch = app.add_subcommand("watch", "Puts watched by --watchers streams on the key prefix (put-to-event latency)");
  watch->add_option("--watchers", o.watchers, "Watch streams")->capture_default_str()->check(CLI::Range(1, 10000));
  watch->add_option("--drain", o.watch_drain_s, "Seconds to wait for the last events")->capture_default_str()->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (put->parsed()) o.workload = Workload::kPut;
  if (range->parsed()) o.workload = Workload::kRange;
  if (txn->parsed()) o.workload = Workload::kTxnPut;
  if (del->parsed()) o.workload = Workload::kDelete;
  if (mixed->parsed()) o.workload = Workload::kMixed;
  if (watch->parsed()) o.workload = Workload::kWatch;
  o.serializable = consistency == "s";
  o.dist = dist == "zipf" ? Distribution::kZipf : dist == "sequential" ? Distribution::kSequential : Distribution::kUniform;
  o.progress = !quiet;

  auto usage = [](const std::string& msg) {
    std::fprintf(stderr, "balsa-bench: %s\n", msg.c_str());
    return 2;
  };
  for (size_t start = 0; start <= endpoints.size();) {
    const size_t comma = std::min(endpoints.find(',', start), endpoints.size());
    const std::string ep = endpoints.substr(start, comma - start);
    if (ep.empty()) return usage("empty endpoint in --endpoints");
    if (ep.rfind("https://", 0) == 0) return usage("TLS endpoints are not supported: " + ep);
    o.endpoints.push_back(ep);
    start = comma + 1;
  }
  if (o.total == 0 && o.duration_s == 0) return usage("give --total or --duration");
  if (o.workload == Workload::kWatch && o.value_size < 8)
    return usage("watch needs --val-size >= 8 (the value carries the send time)");
  if (!KeyGen(o.key_prefix, o.key_size, o.key_space, Distribution::kUniform, 0, 0).ok())
    return usage("--key-size " + std::to_string(o.key_size) + " cannot hold the prefix and " +
                 std::to_string(o.key_space) + " key numbers");

  std::string err;
  const auto channels = connect(o, &err);
  if (channels.empty()) {
    Result r;
    r.fatal = err;
    if (json) std::cout << to_json(o, r).dump(2) << "\n";
    std::fprintf(stderr, "balsa-bench: %s\n", err.c_str());
    return 2;
  }
  const Result r = run(o, channels);
  if (json)
    std::cout << to_json(o, r).dump(2) << "\n";
  else if (r.fatal.empty())
    print_text(o, r);
  if (!r.fatal.empty()) {
    std::fprintf(stderr, "balsa-bench: %s\n", r.fatal.c_str());
    for (const auto& [code, n] : r.errors)
      std::fprintf(stderr, "balsa-bench: %s x%llu (%s)\n", code_name(code).c_str(), static_cast<unsigned long long>(n),
                   r.error_text.at(code).c_str());
    return 1;
  }
  if (r.failed != 0) {
    if (json)  // the text form already listed them
      for (const auto& [code, n] : r.errors)
        std::fprintf(stderr, "balsa-bench: %s x%llu (%s)\n", code_name(code).c_str(),
                     static_cast<unsigned long long>(n), r.error_text.at(code).c_str());
    return 1;
  }
  return 0;
}
