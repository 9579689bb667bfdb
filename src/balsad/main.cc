// balsad: an etcd v3 compatible replicated KV server on Balsa's Raft runtime.
// Flags use etcd's names; `balsad --help` explains each.
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
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

#include "balsad/auto_compactor.h"
#include "balsad/client_listener.h"
#include "balsad/config.h"
#include "balsad/config_flags.h"
#include "balsad/data_dir.h"
#include "balsad/restore.h"
#include "balsad/http_gateway.h"
#include "balsad/tls.h"
#include "balsad/server.h"
#include "balsad/service_context.h"
#include "kv/command.h"
#include "kv/kv_state_machine.h"
#include "runtime/node.h"
#include "storage/durable_log.h"
#include "storage/fs.h"
#include "transport/grpc_transport.h"

using namespace balsa;
using namespace balsa::balsad;

namespace {

const char* role_name(Role r) {
  switch (r) {
    case Role::kLeader: return "leader";
    case Role::kCandidate: return "candidate";
    case Role::kPreCandidate: return "pre-candidate";
    default: return "follower";
  }
}

void setup_logging(const balsad::Config& cfg) {
  std::vector<spdlog::sink_ptr> sinks;
  for (const std::string& o : split(cfg.log_outputs, ',')) {
    if (o == "default" || o == "stderr") sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    else if (o == "stdout") sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
    else sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(o));  // throws spdlog_ex
  }
  if (sinks.empty()) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("balsad", sinks.begin(), sinks.end());
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%f%z %l [" + cfg.name + "] %v");
  const std::string& l = cfg.log_level;
  spdlog::set_level(l == "panic" || l == "fatal" ? spdlog::level::critical : spdlog::level::from_str(l));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "restore") == 0) return run_restore(argc - 1, argv + 1);
  balsad::Config cfg;
  CLI::App app{"balsad: an etcd v3 API compatible key-value server replicated with Balsa's Raft.\n"
               "'balsad restore --help': build a new cluster's data dirs from a snapshot file.\n"
               "Flags, ETCD_* environment variables and --config-file follow etcd 3.4's names, meanings and\n"
               "defaults. docs/balsad.md has the table of every etcd flag and what balsad does with it."};
  app.set_help_flag("-h,--help", "Print this help and exit");
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and exit");
  add_etcd_flags(app, cfg);

  std::vector<std::string> warnings;
  Cluster cluster;
  try {
    app.parse(argc, argv);
    if (show_version) {
      std::printf("balsad Version: %s (etcd API)\n", kEtcdVersion);
      return 0;
    }
    finish_config(app, cfg, &warnings);
    cluster = resolve(cfg);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "balsad: %s\nRun 'balsad --help' for the flags.\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "balsad: %s\n", e.what());
    return 2;
  }

  // Debian's abseil is built with its debug-mode default: every absl::Mutex lock (gRPC takes
  // many per RPC) updates a global lock-order graph for deadlock detection. It cost ~3% of
  // balsad's CPU under `etcdctl check perf` (perf: libabsl_graphcycles_internal + synchronization).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  try {
    setup_logging(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "balsad: --log-outputs: %s\n", e.what());
    return 2;
  }
  for (const auto& w : warnings) spdlog::warn("{}", w);
  // gRPC reads its TLS cipher list once, at its first use: set it before anything touches gRPC.
  if (!cfg.cipher_suites.empty()) ::setenv("GRPC_SSL_CIPHER_SUITES", openssl_cipher_list(cfg.cipher_suites).c_str(), 1);

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

  // Client TLS: one context for every https:// client (and metrics) URL.
  TlsFiles client_tls{cfg.cert_file, cfg.key_file, cfg.trusted_ca_file, cfg.client_cert_auth, cfg.auto_tls};
  SslCtxPtr client_ssl;
  try {
    bool any_tls = false;
    for (const auto& u : split(cfg.listen_client_urls + "," + cfg.listen_metrics_urls, ','))
      any_tls |= parse_url(u).tls;
    if (any_tls) {
      if (cfg.auto_tls && cfg.cert_file.empty()) {
        std::vector<std::string> hosts;
        for (const auto& u : split(cfg.listen_client_urls, ',')) hosts.push_back(parse_url(u).host);
        ensure_self_signed(path_join(cfg.data_dir, "fixtures/client"), hosts, &client_tls);
        if (cfg.client_cert_auth) spdlog::warn("--auto-tls with --client-cert-auth: clients need certificates from --trusted-ca-file");
        spdlog::info("--auto-tls: serving a self-signed certificate from {}", client_tls.cert_file);
      }
      if (client_tls.cert_file.empty()) {
        spdlog::critical("--listen-metrics-urls has an https:// URL but neither --cert-file nor --auto-tls is set");
        return 2;
      }
      client_ssl = make_server_ctx(client_tls, openssl_cipher_list(cfg.cipher_suites));
    }
  } catch (const std::exception& e) {
    spdlog::critical("client TLS: {}", e.what());
    return 1;
  }

  PosixFileSystem fs;
  std::unique_ptr<DurableLog> log;
  try {
    const std::string member_dir = path_join(cfg.data_dir, "member");
    const std::string dir = path_join(member_dir, "raft");
    const std::string id_path = path_join(member_dir, "balsad-id");
    bool has_log = false;  // any file under member/raft (wal/ and snap/ hold them; wal/ may link to --wal-dir)
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             dir, std::filesystem::directory_options::follow_directory_symlink, ec);
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
    if (const std::string why = prepare_wal_dir(cfg, dir, has_log); !why.empty()) {
      spdlog::critical("{}", why);
      return 1;
    }
    fs.create_dirs(dir);
    DurableLogOptions lopt;
    lopt.keep_snapshots = cfg.max_snapshots;
    log = DurableLog::open(fs, dir, lopt);
  } catch (const std::exception& e) {
    spdlog::critical("cannot open data dir {}: {}", cfg.data_dir, e.what());
    return 1;
  }

  kv::KvStateMachine sm;

  GrpcTransportOptions topt;
  topt.self = me.node_id;
  topt.cluster_id = cluster.cluster_id;
  topt.listen_address = parse_url(split(cfg.listen_peer_urls, ',').front()).address();
  if (!cfg.peer_cert_file.empty()) {
    GrpcTransportTls t;
    t.ca_file = cfg.peer_trusted_ca_file;
    t.cert_file = cfg.peer_cert_file;
    t.key_file = cfg.peer_key_file;
    t.require_client_cert = cfg.peer_client_cert_auth;
    topt.tls = t;
  }
  topt.max_message_bytes = std::max<size_t>(topt.max_message_bytes, cfg.max_request_bytes * 4);
  GrpcTransport transport(topt);
  for (const Member& m : cluster.members)
    if (m.node_id != me.node_id) transport.add_peer(m.node_id, parse_url(m.peer_urls.front()).address());

  NodeOptions nopt;
  nopt.id = me.node_id;
  for (const Member& m : cluster.members) nopt.voters.push_back(m.node_id);
  nopt.tick_interval = std::chrono::milliseconds(cfg.heartbeat_interval_ms);
  nopt.election_ticks = cfg.election_timeout_ms / cfg.heartbeat_interval_ms;
  nopt.heartbeat_ticks = 1;
  nopt.pre_vote = cfg.pre_vote;
  nopt.snapshot_entries = cfg.snapshot_count;
  nopt.catchup_entries = std::min<uint64_t>(5000, cfg.snapshot_count);
  nopt.max_request_bytes = cfg.max_request_bytes + 1024;
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
  spdlog::info("serving peer traffic on {} ({})", topt.listen_address,
               topt.tls ? (cfg.peer_client_cert_auth ? "mutual TLS" : "TLS") : "plaintext");

  AutoCompactor compactor(cfg, *node, sm);

  ServiceLimits limits;
  limits.max_request_bytes = cfg.max_request_bytes;
  limits.max_txn_ops = static_cast<int>(std::min<uint64_t>(cfg.max_txn_ops, INT32_MAX));
  limits.data_dir = cfg.data_dir;
  ClientServices services(cluster, *node, sm, limits);
  grpc::ServerBuilder builder;
  // No listening port: the client listeners hand gRPC each connection (client_listener.h).
  builder.SetMaxReceiveMessageSize(static_cast<int>(cfg.max_request_bytes + 512 * 1024));
  builder.SetMaxSendMessageSize(INT32_MAX);
  if (const int64_t ms = parse_go_duration_ms(cfg.grpc_keepalive_interval); ms > 0)
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(std::min<int64_t>(ms, INT32_MAX)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(std::min<int64_t>(parse_go_duration_ms(cfg.grpc_keepalive_timeout), INT32_MAX)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(std::min<int64_t>(parse_go_duration_ms(cfg.grpc_keepalive_min_time), INT32_MAX)));
  services.register_on(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    spdlog::critical("cannot start the client gRPC server");
    node->stop();
    return 1;
  }

  HttpFront client_http, metrics_http;
  add_probe_routes(client_http, services.context(), true);
  if (cfg.enable_grpc_gateway) {
    grpc::ChannelArguments gw_args;
    gw_args.SetMaxReceiveMessageSize(-1);
    gw_args.SetMaxSendMessageSize(-1);
    add_gateway_routes(client_http, server->InProcessChannel(gw_args));
  }
  client_http.set_payload_max_length(cfg.max_request_bytes * 2 + (1 << 20));  // base64 and JSON overhead
  add_probe_routes(metrics_http, services.context(), false);
  std::vector<std::unique_ptr<ClientListener>> listeners;
  auto listen_on = [&](const std::string& url, bool client) {
    const HostPort hp = parse_url(url);
    auto l = std::make_unique<ClientListener>(url, hp, hp.tls ? client_ssl.get() : nullptr,
                                              client ? server.get() : nullptr, client ? &client_http : &metrics_http);
    l->start();
    listeners.push_back(std::move(l));
  };
  try {
    for (const std::string& url : split(cfg.listen_client_urls, ',')) {
      listen_on(url, true);
      spdlog::info("serving client requests (gRPC and HTTP/1.1{}) on {}", parse_url(url).tls ? ", TLS" : "", url);
    }
    for (const std::string& url : split(cfg.listen_metrics_urls, ',')) {
      listen_on(url, false);
      spdlog::info("serving /metrics and /health on {}", url);
    }
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    for (auto& l : listeners) l->stop();
    node->stop();
    server->Shutdown();
    return 1;
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
  for (auto& l : listeners) l->stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  spdlog::info("stopped");
  return 0;
}
