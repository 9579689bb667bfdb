#include "balsad/config_flags.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <variant>

namespace balsa::balsad {

namespace {

using Field = std::variant<std::string Config::*, int Config::*, int64_t Config::*, uint64_t Config::*, bool Config::*>;

struct Flag {
  const char* name;
  Field field;
  const char* help;
  const char* group;  // "" for member and cluster flags
};

// What balsad implements. YAML keys are the flag names (TLS ones under *-transport-security).
const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"name", &Config::name, "Human-readable name for this member; must appear in --initial-cluster", ""},
      {"data-dir", &Config::data_dir, "Path to the data directory (default: <name>.etcd)", ""},
      {"wal-dir", &Config::wal_dir, "Dedicated directory for the Raft log (WAL), e.g. on another disk", ""},
      {"snapshot-count", &Config::snapshot_count, "Number of applied entries between local snapshots", ""},
      {"heartbeat-interval", &Config::heartbeat_interval_ms, "Time (ms) of a heartbeat interval (the Raft tick)", ""},
      {"election-timeout", &Config::election_timeout_ms, "Time (ms) for an election to time out; >= 5 heartbeats", ""},
      {"listen-peer-urls", &Config::listen_peer_urls, "URL(s) to listen on for peer (Raft) traffic; https:// turns peer TLS on", ""},
      {"listen-client-urls", &Config::listen_client_urls, "URLs to serve clients on: gRPC and HTTP/1.1 (/health, /metrics, /version, /v3/) on each; https:// for TLS", ""},
      {"listen-metrics-urls", &Config::listen_metrics_urls, "Extra URLs serving only /metrics and /health", ""},
      {"max-snapshots", &Config::max_snapshots, "Snapshot files to keep", ""},
      {"max-wals", &Config::max_wals, "Accepted for etcd; balsad removes WAL segments once a snapshot covers them", ""},
      {"max-txn-ops", &Config::max_txn_ops, "Maximum operations in one transaction", ""},
      {"max-request-bytes", &Config::max_request_bytes, "Maximum client request size in bytes", ""},
      {"grpc-keepalive-min-time", &Config::grpc_keepalive_min_time, "Minimum interval a client may ping the server", ""},
      {"grpc-keepalive-interval", &Config::grpc_keepalive_interval, "Server-to-client ping interval (0 disables)", ""},
      {"grpc-keepalive-timeout", &Config::grpc_keepalive_timeout, "How long to wait for a ping ack before closing", ""},
      {"pre-vote", &Config::pre_vote, "Run Raft's PreVote phase before an election", ""},
      {"strict-reconfig-check", &Config::strict_reconfig_check, "Refuse reconfigurations that could lose quorum (balsad has no runtime reconfiguration yet)", ""},
      {"enable-grpc-gateway", &Config::enable_grpc_gateway, "Serve the v3 JSON gateway under /v3/ on the client URLs", ""},
      {"auto-compaction-mode", &Config::auto_compaction_mode, "periodic (retention is a duration or hours) or revision (retention is a count)", ""},
      {"auto-compaction-retention", &Config::auto_compaction_retention, "Auto compaction retention; 0 turns it off", ""},
      {"initial-advertise-peer-urls", &Config::initial_advertise_peer_urls, "This member's peer URLs; must equal its --initial-cluster entry", "Clustering"},
      {"initial-cluster", &Config::initial_cluster, "All members: name=http(s)://host:port,... (default: <name>=<initial-advertise-peer-urls>)", "Clustering"},
      {"initial-cluster-state", &Config::initial_cluster_state, "new or existing (existing needs this member's data dir)", "Clustering"},
      {"initial-cluster-token", &Config::initial_cluster_token, "Cluster token: member and cluster ids are derived from it", "Clustering"},
      {"advertise-client-urls", &Config::advertise_client_urls, "This member's client URLs as reported by MemberList", "Clustering"},
      {"force-new-cluster", &Config::force_new_cluster, "Not supported (refused when true): restore a snapshot into a one-member cluster instead", "Clustering"},
      {"cert-file", &Config::cert_file, "Client server TLS certificate (PEM)", "Security"},
      {"key-file", &Config::key_file, "Client server TLS key (PEM)", "Security"},
      {"client-cert-auth", &Config::client_cert_auth, "Require and verify client certificates", "Security"},
      {"trusted-ca-file", &Config::trusted_ca_file, "CA that signs client certificates", "Security"},
      {"auto-tls", &Config::auto_tls, "Client TLS with a generated self-signed certificate", "Security"},
      {"peer-cert-file", &Config::peer_cert_file, "Peer TLS certificate (PEM), used as server and client", "Security"},
      {"peer-key-file", &Config::peer_key_file, "Peer TLS key (PEM)", "Security"},
      {"peer-client-cert-auth", &Config::peer_client_cert_auth, "Require and verify peers' client certificates", "Security"},
      {"peer-trusted-ca-file", &Config::peer_trusted_ca_file, "CA that signs peer certificates", "Security"},
      {"peer-auto-tls", &Config::peer_auto_tls, "Not supported (refused when true): peers are always verified against a CA", "Security"},
      {"cipher-suites", &Config::cipher_suites, "Comma-separated TLS 1.2 cipher suites (Go's names), client and peer", "Security"},
      {"logger", &Config::logger, "zap or capnslog (both log the same way here)", "Logging"},
      {"log-outputs", &Config::log_outputs, "default, stderr, stdout, or file paths (comma-separated)", "Logging"},
      {"log-level", &Config::log_level, "debug, info, warn, error, panic or fatal", "Logging"},
      {"debug", &Config::debug, "Same as --log-level=debug", "Logging"},
  };
  return table;
}

// etcd flags balsad does not implement: accepted at etcd's default, refused otherwise.
struct Refused {
  const char* name;
  const char* etcd_default;
  const char* why;
};
const std::vector<Refused>& refused() {
  static const std::vector<Refused> table = {
      {"enable-v2", "false", "balsad serves etcd's v3 API only"},
      {"quota-backend-bytes", "0", "the space quota and its NOSPACE alarm are not enforced yet"},
      {"experimental-enable-v2v3", "", "balsad serves etcd's v3 API only"},
      {"discovery", "", "discovery is not supported: list every member in --initial-cluster"},
      {"discovery-fallback", "proxy", "discovery is not supported"},
      {"discovery-proxy", "", "discovery is not supported"},
      {"discovery-srv", "", "DNS SRV discovery is not supported: list every member in --initial-cluster"},
      {"discovery-srv-name", "", "DNS SRV discovery is not supported"},
      {"proxy", "off", "etcd's v2 proxy mode is not supported"},
      {"proxy-failure-wait", "5000", "etcd's v2 proxy mode is not supported"},
      {"proxy-refresh-interval", "30000", "etcd's v2 proxy mode is not supported"},
      {"proxy-dial-timeout", "1000", "etcd's v2 proxy mode is not supported"},
      {"proxy-write-timeout", "5000", "etcd's v2 proxy mode is not supported"},
      {"proxy-read-timeout", "0", "etcd's v2 proxy mode is not supported"},
      {"client-crl-file", "", "certificate revocation lists are not checked yet"},
      {"peer-crl-file", "", "certificate revocation lists are not checked yet"},
      {"peer-cert-allowed-cn", "", "restricting peers by certificate CN is not supported yet"},
      {"peer-cert-allowed-hostname", "", "restricting peers by certificate hostname is not supported yet"},
      {"cors", "", "CORS headers are not served"},
      {"host-whitelist", "*", "Host header filtering is not supported"},
      {"enable-pprof", "false", "pprof is Go's profiler; balsad has none (use perf)"},
      {"auth-token", "simple", "authentication is not implemented yet"},
      {"bcrypt-cost", "10", "authentication is not implemented yet"},
      {"auth-token-ttl", "300", "authentication is not implemented yet"},
      {"unsafe-no-fsync", "false", "balsad never acknowledges a write before its fsync"},
      {"backend-batch-interval", "0", "balsad has no bbolt backend"},
      {"backend-batch-limit", "0", "balsad has no bbolt backend"},
      {"backend-bbolt-freelist-type", "map", "balsad has no bbolt backend"},
      {"log-package-levels", "", "capnslog package levels are not supported: use --log-level"},
      {"metrics", "basic", "only the basic metrics are served"},
      {"initial-election-tick-advance", "true", "balsad's first election always waits a randomized timeout"},
      {"max-concurrent-streams", "4294967295", "the gRPC stream limit is not configurable"},
      {"experimental-initial-corrupt-check", "false", "corruption checks against peers are not implemented"},
      {"experimental-corrupt-check-time", "0s", "corruption checks against peers are not implemented"},
      {"experimental-enable-lease-checkpoint", "false", "lease checkpoints are not implemented"},
      {"experimental-compaction-batch-limit", "1000", "compaction is not batched"},
      {"experimental-peer-skip-client-san-verification", "false", "peer certificates are always fully verified"},
      {"experimental-watch-progress-notify-interval", "10m0s", "watch progress notifications are not configurable"},
      {"experimental-backend-bbolt-freelist-type", "array", "balsad has no bbolt backend"},
  };
  return table;
}

std::string env_name(const std::string& flag) {
  std::string e = "ETCD_";
  for (char c : flag) e += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return e;
}

bool parse_bool(const std::string& v, bool* out) {
  std::string l = v;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "true" || l == "1" || l == "t") return *out = true, true;
  if (l == "false" || l == "0" || l == "f") return *out = false, true;
  return false;
}

// Sets one field from text; false if the text does not parse as the field's type.
bool assign(Config& cfg, const Field& field, const std::string& v) {
  return std::visit(
      [&](auto member) -> bool {
        using T = std::remove_reference_t<decltype(cfg.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          cfg.*member = v;
          return true;
        } else if constexpr (std::is_same_v<T, bool>) {
          return parse_bool(v, &(cfg.*member));
        } else {
          if (v.empty()) return false;
          size_t used = 0;
          try {
            if constexpr (std::is_same_v<T, uint64_t>) {
              if (v[0] == '-') return false;
              cfg.*member = std::stoull(v, &used);
            } else if constexpr (std::is_same_v<T, int>) {
              cfg.*member = std::stoi(v, &used);
            } else {
              cfg.*member = std::stoll(v, &used);
            }
          } catch (const std::exception&) {
            return false;
          }
          return used == v.size();
        }
      },
      field);
}

bool same_as_default(const std::string& value, const char* etcd_default) {
  bool a, b;
  if (parse_bool(value, &a) && parse_bool(etcd_default, &b)) return a == b;
  return value == etcd_default;
}

void check_refused(const std::string& name, const std::string& value, const std::string& source) {
  for (const Refused& r : refused())
    if (name == r.name && !same_as_default(value, r.etcd_default))
      throw std::invalid_argument(fmt::format("{}{} is not supported by balsad: {} (etcd's default '{}' is accepted)",
                                              source, name, r.why, r.etcd_default));
}

const Flag* find_flag(const std::string& name) {
  for (const Flag& f : flags())
    if (name == f.name) return &f;
  return nullptr;
}

bool is_refused(const std::string& name) {
  return std::any_of(refused().begin(), refused().end(), [&](const Refused& r) { return name == r.name; });
}

void set_from_yaml(Config& cfg, const std::string& key, const YAML::Node& node, const std::string& path) {
  const int line = node.Mark().line + 1;
  auto where = [&] { return fmt::format("config file {} line {}: ", path, line); };
  std::string value;
  if (node.IsNull()) value = "";
  else if (node.IsScalar()) value = node.Scalar();
  else if (node.IsSequence() && (key.find("urls") != std::string::npos || key == "cipher-suites" || key == "log-outputs")) {
    for (const auto& item : node) {
      if (!item.IsScalar()) throw std::invalid_argument(where() + "'" + key + "' must be a list of strings");
      value += (value.empty() ? "" : ",") + item.Scalar();
    }
  } else {
    throw std::invalid_argument(where() + "'" + key + "' must be a single value");
  }
  if (const Flag* f = find_flag(key)) {
    if (!assign(cfg, f->field, value))
      throw std::invalid_argument(where() + fmt::format("'{}: {}' is not a valid value", key, value));
    return;
  }
  if (is_refused(key)) {
    check_refused(key, value, where());
    return;
  }
  throw std::invalid_argument(where() + "unknown key '" + key + "' (not an etcd 3.4 configuration field)");
}

}  // namespace

void add_etcd_flags(CLI::App& app, Config& cfg) {
  app.add_option("--config-file", cfg.config_file,
                 "etcd's YAML configuration file; when given, other flags and ETCD_* variables are ignored");
  for (const Flag& f : flags()) {
    const std::string opt = std::string("--") + f.name;
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(cfg.*member)>;
          CLI::Option* o;
          if constexpr (std::is_same_v<T, bool>) {
            o = app.add_flag(opt, cfg.*member, f.help);
          } else {
            o = app.add_option(opt, cfg.*member, f.help);
            o->capture_default_str()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as Go's flags
          }
          o->group(*f.group ? f.group : "Member");
        },
        f.field);
  }
  for (const Refused& r : refused()) {
    auto* holder = new std::string;  // lives as long as the process (the App holds the pointer)
    app.add_option(std::string("--") + r.name, *holder, std::string("Not supported: ") + r.why)
        ->group("etcd flags balsad refuses unless at etcd's default")
        ->default_str(r.etcd_default);
  }
}

void load_config_file(const std::string& path, Config& cfg) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw std::invalid_argument("--config-file: cannot read " + path);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(fmt::format("config file {} is not valid YAML: line {}, column {}: {}", path,
                                            e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw std::invalid_argument("config file " + path + ": the top level must be a mapping of keys");
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    if (key == "client-transport-security" || key == "peer-transport-security") {
      const bool peer = key[0] == 'p';
      if (kv.second.IsNull()) continue;
      if (!kv.second.IsMap())
        throw std::invalid_argument(fmt::format("config file {} line {}: '{}' must be a mapping", path,
                                                kv.second.Mark().line + 1, key));
      for (const auto& t : kv.second) {
        const std::string sub = t.first.Scalar();
        // etcd's TLS section keys -> the flag they stand for.
        static const std::set<std::string> known = {"cert-file", "key-file", "client-cert-auth", "trusted-ca-file",
                                                     "auto-tls", "crl-file", "allowed-cn", "allowed-hostname"};
        if (!known.count(sub))
          throw std::invalid_argument(fmt::format("config file {} line {}: unknown key '{}' in {}", path,
                                                  t.first.Mark().line + 1, sub, key));
        std::string flag = sub;
        if (sub == "crl-file") flag = peer ? "peer-crl-file" : "client-crl-file";
        else if (sub == "allowed-cn" || sub == "allowed-hostname") flag = std::string(peer ? "peer-cert-" : "client-cert-") + sub;
        else if (peer) flag = "peer-" + sub;
        if (!peer && (sub == "allowed-cn" || sub == "allowed-hostname")) {
          if (!t.second.IsNull() && !t.second.Scalar().empty())
            throw std::invalid_argument(fmt::format("config file {}: {}.{} is not supported", path, key, sub));
          continue;
        }
        set_from_yaml(cfg, flag, t.second, path);
      }
      continue;
    }
    if (key == "config-file")
      throw std::invalid_argument("config file " + path + ": 'config-file' cannot appear inside a config file");
    set_from_yaml(cfg, key, kv.second, path);
  }
}

void finish_config(CLI::App& app, Config& cfg, std::vector<std::string>* warnings) {
  if (!cfg.config_file.empty()) {
    std::vector<std::string> ignored;
    for (const CLI::Option* o : app.get_options())
      if (o->count() > 0 && o->get_name() != "--config-file") ignored.push_back(o->get_name());
    if (!ignored.empty())
      warnings->push_back(fmt::format("--config-file is set: ignoring the other flags ({}), as etcd does",
                                      fmt::join(ignored, " ")));
    const std::string path = cfg.config_file;
    cfg = Config{};
    cfg.config_file = path;
    load_config_file(path, cfg);
  } else {
    for (const Flag& f : flags()) {
      const std::string env = env_name(f.name);
      const char* v = std::getenv(env.c_str());
      if (v == nullptr) continue;
      if (app.count(std::string("--") + f.name) > 0) {
        warnings->push_back(fmt::format("{} is shadowed by the --{} flag", env, f.name));
        continue;
      }
      if (!assign(cfg, f.field, v)) throw std::invalid_argument(fmt::format("{}='{}' is not a valid value", env, v));
    }
    for (const Refused& r : refused()) {
      const std::string opt = std::string("--") + r.name;
      if (app.count(opt) > 0) check_refused(r.name, app.get_option(opt)->as<std::string>(), "--");
      else if (const char* v = std::getenv(env_name(r.name).c_str()))
        check_refused(r.name, v, env_name(r.name) + ": ");
    }
  }
  if (cfg.debug) cfg.log_level = "debug";
  if (cfg.force_new_cluster)
    throw std::invalid_argument(
        "--force-new-cluster is not supported by balsad yet (it would rewrite the membership in the Raft log); "
        "to recover a cluster that lost quorum, save a snapshot from a surviving member's data and restore it "
        "into a one-member cluster with 'balsad restore'");
}

}  // namespace balsa::balsad
