// watch_fanout: N watchers on one prefix while a paced writer puts at R puts/s; prints the
// event delivery latency (put sent -> event received, one clock, one process) p50/p99/max,
// how many events arrived of those expected, and the server's CPU over the run (from
// /proc/<pid>/stat). Speaks etcd's v3 gRPC API, so it runs against balsad and etcd alike.
// Run it with bench/watch_fanout.sh, which starts both servers side by side.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace pb = ::etcdserverpb;
using Clock = std::chrono::steady_clock;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

double cpu_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    in >> field;
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"watch_fanout: watch delivery latency under a paced put load (etcd v3 API)"};
  std::string endpoint;
  int watchers = 1000, streams = 20, rate = 1000, seconds = 10, writers = 16, server_pid = 0;
  std::string label = "server";
  app.add_option("--endpoint", endpoint, "host:port")->required();
  app.add_option("--watchers", watchers)->capture_default_str();
  app.add_option("--streams", streams, "Watch streams the watchers are spread over")->capture_default_str();
  app.add_option("--rate", rate, "Puts per second")->capture_default_str();
  app.add_option("--seconds", seconds)->capture_default_str();
  app.add_option("--writers", writers, "Writer threads sharing the rate")->capture_default_str();
  app.add_option("--server-pid", server_pid, "Server process for the CPU figure");
  app.add_option("--label", label);
  CLI11_PARSE(app, argc, argv);

  const std::string prefix = "/bench-watch/";
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct connections
    channels.push_back(grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
  }

  struct StreamState {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> rw;
    std::vector<uint32_t> latency_us;
    uint64_t events = 0;
    int created = 0;
    int want = 0;
  };
  std::vector<StreamState> ss(static_cast<size_t>(streams));
  std::atomic<int> created_total{0};
  std::vector<std::thread> readers;
  std::atomic<bool> stop{false};
  for (int s = 0; s < streams; ++s) {
    StreamState& st = ss[static_cast<size_t>(s)];
    st.ctx = std::make_unique<grpc::ClientContext>();
    auto stub = pb::Watch::NewStub(channels[static_cast<size_t>(s) % channels.size()]);
    st.rw = stub->Watch(st.ctx.get());
    st.want = watchers / streams + (s < watchers % streams ? 1 : 0);
    for (int w = 0; w < st.want; ++w) {
      pb::WatchRequest req;
      auto* c = req.mutable_create_request();
      c->set_key(prefix);
      std::string end = prefix;
      end.back()++;
      c->set_range_end(end);
      st.rw->Write(req);
    }
    readers.emplace_back([&st, &created_total] {
      pb::WatchResponse resp;
      while (st.rw->Read(&resp)) {
        if (resp.created()) {
          st.created++;
          created_total++;
        }
        const int64_t t = now_ns();
        for (const auto& e : resp.events()) {
          const int64_t sent = std::strtoll(e.kv().value().c_str(), nullptr, 10);
          st.latency_us.push_back(static_cast<uint32_t>(std::max<int64_t>(0, (t - sent) / 1000)));
          st.events++;
        }
      }
    });
  }
  const auto wait_until = Clock::now() + std::chrono::seconds(30);
  while (created_total.load() < watchers && Clock::now() < wait_until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (created_total.load() < watchers) {
    std::cerr << "only " << created_total.load() << " of " << watchers << " watches created\n";
    return 1;
  }

  const double cpu0 = server_pid ? cpu_seconds(server_pid) : 0;
  const auto t0 = Clock::now();
  std::atomic<uint64_t> puts_ok{0}, puts_failed{0};
  std::vector<std::thread> ws;
  const int64_t total = static_cast<int64_t>(rate) * seconds;
  for (int w = 0; w < writers; ++w) {
    ws.emplace_back([&, w] {
      auto kv = pb::KV::NewStub(channels[static_cast<size_t>(w) % channels.size()]);
      for (int64_t i = w; i < total; i += writers) {
        const auto due = t0 + std::chrono::nanoseconds(i * 1'000'000'000LL / rate);
        std::this_thread::sleep_until(due);
        pb::PutRequest req;
        req.set_key(prefix + std::to_string(i % 100));
        req.set_value(std::to_string(now_ns()));
        pb::PutResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        if (kv->Put(&ctx, req, &resp).ok()) puts_ok++;
        else puts_failed++;
      }
    });
  }
  for (auto& t : ws) t.join();
  const double write_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the last events arrive
  const double cpu1 = server_pid ? cpu_seconds(server_pid) : 0;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& st : ss) st.ctx->TryCancel();
  for (auto& t : readers) t.join();

  std::vector<uint32_t> all;
  uint64_t events = 0;
  for (auto& st : ss) {
    events += st.events;
    all.insert(all.end(), st.latency_us.begin(), st.latency_us.end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<size_t>(p * static_cast<double>(all.size() - 1))] / 1000.0; };
  const uint64_t expected = puts_ok.load() * static_cast<uint64_t>(watchers);
  std::printf(
      "%s: %d watchers on %d streams, %llu puts in %.1f s (%.0f/s, %llu failed); events %llu of %llu expected; "
      "delivery latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; server CPU %.2f s over %.1f s (%.0f%% of one core)\n",
      label.c_str(), watchers, streams, static_cast<unsigned long long>(puts_ok.load()), write_s,
      static_cast<double>(puts_ok.load()) / write_s, static_cast<unsigned long long>(puts_failed.load()),
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(expected), pct(0.5), pct(0.99),
      all.empty() ? 0.0 : all.back() / 1000.0, cpu1 - cpu0, elapsed, 100.0 * (cpu1 - cpu0) / elapsed);
  return events >= expected ? 0 : 1;
}
