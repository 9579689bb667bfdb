// balsad: an etcd v3 compatible replicated KV server on Balsa's Raft runtime.
// Flags use etcd's names; `balsad --help` explains each.
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "balsad/config.h"
#include "balsad/lease_service.h"
#include "balsad/server.h"
#include "balsad/service_context.h"
#include "balsad/watch_service.h"
#include "kv/command.h"
#include "kv/kv_state_machine.h"
#include "kv/watch_hub.h"
#include "runtime/node.h"
#include "storage/durable_log.h"
#include "storage/fs.h"
#include "transport/grpc_transport.h"

using namespace balsa;
using namespace balsa::balsad;

namespace {

int64_t resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// <data-dir>/member/balsad-id names the member and cluster a data dir belongs to, so a restart
// with flags that resolve to another member or cluster is refused instead of joining with a log
// that is not its own. Written (and fsynced) before the first Raft log file.
std::string identity_text(const Cluster& c) {
  return "member_id=" + hex_id(c.me().member_id) + "\ncluster_id=" + hex_id(c.cluster_id) + "\nname=" + c.me().name +
         "\n";
}

bool write_identity(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) return false;
  const std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

const char* role_name(Role r) {
  switch (r) {
    case Role::kLeader: return "leader";
    case Role::kCandidate: return "candidate";
    case Role::kPreCandidate: return "pre-candidate";
    default: return "follower";
  }
}

}  // namespace

int main(int argc, char** argv) {
  balsad::Config cfg;
  CLI::App app{"balsad: an etcd v3 API compatible key-value server replicated with Balsa's Raft.\n"
               "Flags follow etcd's names and meanings. URLs are http://host:port (no TLS yet)."};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.add_option("--name", cfg.name, "Human-readable name for this member; must appear in --initial-cluster")
      ->capture_default_str();
  app.add_option("--data-dir", cfg.data_dir, "Path to the data directory (default: <name>.etcd)");
  app.add_option("--listen-client-urls", cfg.listen_client_urls,
                 "Comma-separated URLs to serve the etcd v3 gRPC API on (KV, Maintenance, Cluster)")
      ->capture_default_str();
  app.add_option("--advertise-client-urls", cfg.advertise_client_urls,
                 "This member's client URLs as reported by MemberList")
      ->capture_default_str();
  app.add_option("--listen-peer-urls", cfg.listen_peer_urls,
                 "URL to listen on for Raft traffic from peers (plain gRPC; the first URL is used)")
      ->capture_default_str();
  app.add_option("--initial-advertise-peer-urls", cfg.initial_advertise_peer_urls,
                 "This member's peer URLs; must equal its entry in --initial-cluster")
      ->capture_default_str();
  app.add_option("--initial-cluster", cfg.initial_cluster,
                 "All members: name=http://host:port,... (default: <name>=<initial-advertise-peer-urls>)");
  app.add_option("--initial-cluster-state", cfg.initial_cluster_state,
                 "new: bootstrap from --initial-cluster (or restart, if the data dir has a log). existing: "
                 "restart from the data dir; refused when it is empty (joining as a new member, after "
                 "'etcdctl member add', is not supported yet)")
      ->capture_default_str();
  app.add_option("--initial-cluster-token", cfg.initial_cluster_token,
                 "Cluster token: member and cluster ids are derived from it")
      ->capture_default_str();
  app.add_option("--heartbeat-interval", cfg.heartbeat_interval_ms, "Time (ms) of a heartbeat interval (the Raft tick)")
      ->capture_default_str();
  app.add_option("--election-timeout", cfg.election_timeout_ms,
                 "Time (ms) for an election to time out; at least 5 heartbeat intervals")
      ->capture_default_str();
  app.add_option("--snapshot-send-rate", cfg.snapshot_send_rate,
                 "Bytes per second a snapshot streams to a follower at (0: unlimited)")
      ->capture_default_str();
  app.add_option("--snapshot-count", cfg.snapshot_count, "Number of applied entries between local snapshots")
      ->capture_default_str();
  app.add_option("--listen-metrics-urls", cfg.listen_metrics_urls,
                 "URLs to serve /metrics (Prometheus) and /health on over HTTP. balsad's client port is "
                 "gRPC only, so unlike etcd these are not served on the client URLs");
  app.add_option("--log-level", cfg.log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--experimental-watch-progress-notify-interval", cfg.watch_progress_notify_interval,
                 "Duration of periodical watch progress notification")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "balsad: %s\nRun 'balsad --help' for the flags.\n", e.what());
    return 2;
  }

  Cluster cluster;
  try {
    cluster = resolve(cfg);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "balsad: %s\n", e.what());
    return 2;
  }

  // Debian's abseil is built with its debug-mode default: every absl::Mutex lock (gRPC takes
  // many per RPC) updates a global lock-order graph for deadlock detection. It cost ~3% of
  // balsad's CPU under `etcdctl check perf` (perf: libabsl_graphcycles_internal + synchronization).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%f%z %^%l%$ [" + cfg.name + "] %v");
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));

  // SIGTERM/SIGINT are taken by the main thread with sigtimedwait; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const Member& me = cluster.me();
  spdlog::info("starting balsad version={} name={} member-id={} cluster-id={} raft-id={} data-dir={} members={}",
               kEtcdVersion, me.name, hex_id(me.member_id), hex_id(cluster.cluster_id), me.node_id.value, cfg.data_dir,
               cluster.members.size());

  PosixFileSystem fs;
  std::unique_ptr<DurableLog> log;
  try {
    const std::string member_dir = path_join(cfg.data_dir, "member");
    const std::string dir = path_join(member_dir, "raft");
    const std::string id_path = path_join(member_dir, "balsad-id");
    bool has_log = false;  // any file under member/raft (wal/ and snap/ hold them)
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file()) has_log = true;
    const std::string identity = identity_text(cluster);
    if (!has_log && cfg.initial_cluster_state == "existing") {
      // etcd would ask the peers for the cluster and expect to find itself added with
      // `etcdctl member add`; balsad has no runtime membership changes yet.
      spdlog::critical("--initial-cluster-state=existing but the data dir {} holds no Raft log: joining a running "
                       "cluster as a new member is not supported; restart this member with its old data dir, or "
                       "bootstrap a new cluster with --initial-cluster-state=new",
                       cfg.data_dir);
      return 1;
    }
    if (has_log) {
      std::ifstream in(id_path);
      const std::string found((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (found.empty()) {
        spdlog::critical("data dir {} has a Raft log but no member/balsad-id (an older balsad, whose member ids were "
                         "--initial-cluster positions, wrote it); it cannot be reused",
                         cfg.data_dir);
        return 1;
      }
      if (found != identity) {
        std::string was = found, now = identity;
        std::replace(was.begin(), was.end(), '\n', ' ');
        std::replace(now.begin(), now.end(), '\n', ' ');
        spdlog::critical("data dir {} belongs to {}but the flags make this member {}(changed --name, "
                         "--initial-cluster, --initial-cluster-token or peer URLs?); refusing to start",
                         cfg.data_dir, was, now);
        return 1;
      }
      if (cfg.initial_cluster_state == "new")
        spdlog::info("data dir {} has a Raft log: restarting this member; --initial-cluster only names the peers",
                     cfg.data_dir);
    } else {
      fs.create_dirs(member_dir);
      if (!write_identity(id_path, identity)) {
        spdlog::critical("cannot write {}: {}", id_path, std::strerror(errno));
        return 1;
      }
    }
    fs.create_dirs(dir);
    log = DurableLog::open(fs, dir);
  } catch (const std::exception& e) {
    spdlog::critical("cannot open data dir {}: {}", cfg.data_dir, e.what());
    return 1;
  }

  const auto progress_interval = parse_go_duration(cfg.watch_progress_notify_interval);
  if (!progress_interval || progress_interval->count() <= 0) {
    spdlog::critical("invalid --experimental-watch-progress-notify-interval '{}'", cfg.watch_progress_notify_interval);
    return 1;
  }
  // Watches: the store's applied events feed the hub (set before the node starts applying).
  std::atomic<kv::WatchHub*> watch_hub{nullptr};
  kv::MvccStore::Options store_options;
  store_options.on_events = [&watch_hub](int64_t revision, std::vector<mvccpb::Event>&& events) {
    if (kv::WatchHub* h = watch_hub.load(std::memory_order_acquire)) h->publish(revision, events);
  };
  // The leases' clock (outside the deterministic state machine, fed by what it applies).
  LeaseKeeper lease_keeper(LeaseKeeper::Options{cfg.election_timeout_ms, 100, 1000});
  store_options.on_lease = [&lease_keeper](const kv::LeaseChange& c) { lease_keeper.on_change(c); };
  kv::KvStateMachine sm(store_options);
  const std::unique_ptr<kv::EventSource> event_source = kv::make_event_source(sm);
  kv::WatchHub hub(*event_source);
  watch_hub.store(&hub, std::memory_order_release);

  GrpcTransportOptions topt;
  topt.self = me.node_id;
  topt.cluster_id = cluster.cluster_id;
  topt.listen_address = parse_url(split(cfg.listen_peer_urls, ',').front()).address();
  topt.snapshot.rate_bytes_per_sec = cfg.snapshot_send_rate;
  GrpcTransport transport(topt);
  for (const Member& m : cluster.members)
    if (m.node_id != me.node_id) transport.add_peer(m.node_id, parse_url(m.peer_urls.front()).address());

  NodeOptions nopt;
  nopt.id = me.node_id;
  for (const Member& m : cluster.members) nopt.voters.push_back(m.node_id);
  nopt.tick_interval = std::chrono::milliseconds(cfg.heartbeat_interval_ms);
  nopt.election_ticks = cfg.election_timeout_ms / cfg.heartbeat_interval_ms;
  nopt.heartbeat_ticks = 1;
  nopt.snapshot_entries = cfg.snapshot_count;
  nopt.catchup_entries = std::min<uint64_t>(5000, cfg.snapshot_count);
  nopt.max_request_bytes = kv::kDefaultMaxRequestBytes + 1024;
  nopt.on_fatal = [](const std::string& why) {
    spdlog::critical("fatal storage error, exiting: {}", why);
    spdlog::shutdown();
    std::_Exit(1);
  };

  std::unique_ptr<Node> node;
  try {
    node = std::make_unique<Node>(nopt, *log, sm, transport);
    node->start();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start the Raft node (peer URL {}): {}", cfg.listen_peer_urls, e.what());
    return 1;
  }
  spdlog::info("serving peer traffic on {}", topt.listen_address);

  ClientServices services(cluster, *node, sm, hub, *progress_interval, lease_keeper,
                          LeaseService::min_ttl_seconds(cfg.election_timeout_ms, cfg.heartbeat_interval_ms));
  grpc::ServerBuilder builder;
  for (const std::string& url : split(cfg.listen_client_urls, ','))
    builder.AddListeningPort(parse_url(url).address(), grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(static_cast<int>(kv::kDefaultMaxRequestBytes + 512 * 1024));
  builder.SetMaxSendMessageSize(INT32_MAX);
  services.register_on(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    spdlog::critical("cannot listen on client URLs {}", cfg.listen_client_urls);
    node->stop();
    return 1;
  }
  spdlog::info("serving client gRPC on {}", cfg.listen_client_urls);

  std::vector<std::unique_ptr<httplib::Server>> http_servers;
  std::vector<std::thread> http_threads;
  for (const std::string& url : split(cfg.listen_metrics_urls, ',')) {
    auto http = std::make_unique<httplib::Server>();
    Node* n = node.get();
    http->Get("/metrics", [n](const httplib::Request&, httplib::Response& res) {
      std::string body = n->metrics().render_prometheus();
      body += "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
              "# TYPE process_resident_memory_bytes gauge\n";
      body += "process_resident_memory_bytes " + std::to_string(resident_memory_bytes()) + "\n";
      res.set_content(body, "text/plain; version=0.0.4");
    });
    http->Get("/health", [n](const httplib::Request&, httplib::Response& res) {
      const bool ok = n->status().leader != kNoNode;
      res.status = ok ? 200 : 503;
      res.set_content(ok ? R"({"health":"true"})" : R"({"health":"false"})", "application/json");
    });
    const HostPort hp = parse_url(url);
    if (!http->bind_to_port(hp.host, hp.port)) {
      spdlog::critical("cannot listen on metrics URL {}", url);
      server->Shutdown();
      node->stop();
      return 1;
    }
    httplib::Server* raw = http.get();
    http_threads.emplace_back([raw] { raw->listen_after_bind(); });
    http_servers.push_back(std::move(http));
    spdlog::info("serving /metrics and /health on {}", url);
  }

  // This member's name and client URLs go through the log once per start (etcd's "publish"),
  // so every member's MemberList shows them. Retried until it applies.
  kvpb::MemberAttributes attrs;
  attrs.set_member_id(me.member_id);
  attrs.set_name(me.name);
  for (const auto& u : me.client_urls) attrs.add_client_urls(u);
  std::string publish_cmd;
  if (!kv::encode_command(kv::make_command(0, attrs), &publish_cmd).ok()) {
    spdlog::critical("client URLs too long to publish");
    return 1;
  }
  auto published = std::make_shared<std::atomic<int>>(0);  // 0 to do, 1 in flight, 2 done
  auto next_publish = std::chrono::steady_clock::now();

  // Main thread: wait for a signal; meanwhile log leader changes as etcd does (one line each).
  NodeId last_leader = kNoNode;
  Term last_term;
  int sig = 0;
  while (true) {
    timespec ts{0, 50 * 1000 * 1000};
    sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig > 0) break;
    const NodeStatus st = node->status();
    if (st.leader != kNoNode && published->load() == 0 && std::chrono::steady_clock::now() >= next_publish) {
      published->store(1);
      next_publish = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      node->propose(publish_cmd, [published, name = me.name](CommandResult r) {
        if (r.ok()) spdlog::info("published name {} and client URLs to the cluster at index {}", name, r.index.value);
        else spdlog::debug("publishing client URLs failed ({}); will retry", to_string(r.error));
        published->store(r.ok() ? 2 : 0);
      });
    }
    if (st.leader != last_leader) {
      if (st.leader == kNoNode)
        spdlog::warn("raft.node: {} lost leader {} at term {}", hex_id(me.member_id),
                     hex_id(cluster.member_id_of(last_leader)), st.term.value);
      else
        spdlog::info("raft.node: {} elected leader {} at term {} (this member is {})", hex_id(me.member_id),
                     hex_id(cluster.member_id_of(st.leader)), st.term.value, role_name(st.role));
      last_leader = st.leader;
      last_term = st.term;
    }
  }
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // Stopping the node first fails every pending request (kStopped), so the gRPC server has no
  // outstanding reactor left when it shuts down.
  node->stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  for (auto& h : http_servers) h->stop();
  for (auto& t : http_threads) t.join();
  spdlog::info("stopped");
  return 0;
}
