#include "balsad/config.h"

#include "balsad/sha1.h"
#include "balsad/tls.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace balsa::balsad {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    std::string part = s.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    if (!part.empty()) out.push_back(std::move(part));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string HostPort::address() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

HostPort parse_url(const std::string& url) {
  HostPort hp;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    hp.tls = true;
  } else {
    throw std::invalid_argument(fmt::format("URL '{}' must start with http:// or https:// (unix sockets are not supported)", url));
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos)
    throw std::invalid_argument(fmt::format("URL '{}' must not have a path", url));
  size_t colon;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos) throw std::invalid_argument(fmt::format("URL '{}': unterminated [", url));
    hp.host = rest.substr(1, close - 1);
    colon = close + 1;
    if (colon >= rest.size() || rest[colon] != ':')
      throw std::invalid_argument(fmt::format("URL '{}' needs a port", url));
  } else {
    colon = rest.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument(fmt::format("URL '{}' needs a port", url));
    hp.host = rest.substr(0, colon);
  }
  const std::string port = rest.substr(colon + 1);
  if (hp.host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw std::invalid_argument(fmt::format("URL '{}': bad host or port", url));
  hp.port = std::stoi(port);
  if (hp.port > 65535) throw std::invalid_argument(fmt::format("URL '{}': port out of range", url));
  return hp;
}

uint64_t member_id_for(std::vector<std::string> peer_urls, const std::string& token) {
  std::sort(peer_urls.begin(), peer_urls.end());
  std::string b;
  for (const auto& u : peer_urls) b += u;
  b += token;
  return sha1_prefix64(b);
}

uint64_t cluster_id_for(std::vector<uint64_t> member_ids) {
  std::sort(member_ids.begin(), member_ids.end());
  std::string b;
  for (uint64_t id : member_ids)
    for (int i = 7; i >= 0; --i) b.push_back(static_cast<char>(id >> (8 * i)));
  return sha1_prefix64(b);
}

int64_t parse_go_duration_ms(const std::string& s) {
  if (s == "0") return 0;
  if (s.empty()) throw std::invalid_argument("empty duration");
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.')) ++j;
    if (j == i) throw std::invalid_argument(fmt::format("'{}' is not a duration (e.g. 5s, 2h, 1h30m, 100ms)", s));
    const double v = std::stod(s.substr(i, j - i));
    size_t k = j;
    while (k < s.size() && !((s[k] >= '0' && s[k] <= '9') || s[k] == '.')) ++k;
    const std::string unit = s.substr(j, k - j);
    double ms;
    if (unit == "h") ms = 3600e3;
    else if (unit == "m") ms = 60e3;
    else if (unit == "s") ms = 1e3;
    else if (unit == "ms") ms = 1;
    else if (unit == "us" || unit == "\u00b5s") ms = 1e-3;
    else if (unit == "ns") ms = 1e-6;
    else throw std::invalid_argument(fmt::format("'{}' is not a duration (e.g. 5s, 2h, 1h30m, 100ms)", s));
    total_ms += v * ms;
    i = k;
  }
  return static_cast<int64_t>(total_ms);
}

int64_t auto_compaction_period_ms(const Config& cfg) {
  const std::string& r = cfg.auto_compaction_retention;
  // etcd: a bare number in periodic mode counts hours.
  if (!r.empty() && std::all_of(r.begin(), r.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::stoll(r) * 3600 * 1000;
  return parse_go_duration_ms(r);
}

int64_t effective_quota_bytes(const Config& cfg) {
  return cfg.quota_backend_bytes == 0 ? (int64_t{2} << 30) : cfg.quota_backend_bytes;
}

std::string hex_id(uint64_t id) { return fmt::format("{:x}", id); }

const Member* Cluster::find(uint64_t member_id) const {
  for (const Member& m : members)
    if (m.member_id == member_id) return &m;
  return nullptr;
}

uint64_t Cluster::member_id_of(NodeId id) const {
  for (const Member& m : members)
    if (m.node_id == id) return m.member_id;
  return 0;
}

Cluster resolve(Config& cfg) {
  auto bad = [](const std::string& flag, const std::string& why) {
    return std::invalid_argument(fmt::format("--{}: {}", flag, why));
  };
  if (cfg.name.empty()) throw bad("name", "must not be empty");
  if (cfg.data_dir.empty()) cfg.data_dir = cfg.name + ".etcd";
  if (cfg.initial_cluster.empty()) cfg.initial_cluster = cfg.name + "=" + cfg.initial_advertise_peer_urls;
  if (cfg.initial_cluster_state != "new" && cfg.initial_cluster_state != "existing")
    throw bad("initial-cluster-state", fmt::format("'{}' is neither new nor existing", cfg.initial_cluster_state));
  if (cfg.initial_cluster_token.empty()) throw bad("initial-cluster-token", "must not be empty");
  if (cfg.heartbeat_interval_ms <= 0) throw bad("heartbeat-interval", "must be positive");
  if (cfg.election_timeout_ms < 5 * cfg.heartbeat_interval_ms)
    throw bad("election-timeout", fmt::format("{} ms must be at least 5 x --heartbeat-interval ({} ms)",
                                              cfg.election_timeout_ms, cfg.heartbeat_interval_ms));
  if (cfg.election_timeout_ms > 50000) throw bad("election-timeout", "must be at most 50000 ms");
  if (cfg.snapshot_count == 0) throw bad("snapshot-count", "must be positive");

  auto check_urls = [&](const std::string& flag, const std::string& value) {
    const auto urls = split(value, ',');
    if (urls.empty()) throw bad(flag, "needs at least one URL");
    for (const auto& u : urls) {
      try {
        parse_url(u);
      } catch (const std::invalid_argument& e) {
        throw bad(flag, e.what());
      }
    }
    return urls;
  };
  if (cfg.max_request_bytes == 0) throw bad("max-request-bytes", "must be positive");
  if (cfg.max_request_bytes > (1ull << 30)) throw bad("max-request-bytes", "must be at most 1 GiB");
  if (cfg.max_txn_ops == 0) throw bad("max-txn-ops", "must be positive");
  if (cfg.quota_backend_bytes < 0) throw bad("quota-backend-bytes", "must not be negative");
  if (cfg.auto_compaction_mode != "periodic" && cfg.auto_compaction_mode != "revision")
    throw bad("auto-compaction-mode", fmt::format("'{}' is neither periodic nor revision", cfg.auto_compaction_mode));
  try {
    if (cfg.auto_compaction_mode == "revision") {
      size_t used = 0;
      const long long r = std::stoll(cfg.auto_compaction_retention, &used);
      if (used != cfg.auto_compaction_retention.size() || r < 0) throw std::invalid_argument("x");
    } else {
      auto_compaction_period_ms(cfg);
    }
  } catch (const std::exception&) {
    throw bad("auto-compaction-retention",
              fmt::format("'{}' is not a {} (mode {})", cfg.auto_compaction_retention,
                          cfg.auto_compaction_mode == "revision" ? "revision count" : "duration or number of hours",
                          cfg.auto_compaction_mode));
  }
  for (const auto& [flag, value] : {std::pair{"grpc-keepalive-min-time", &cfg.grpc_keepalive_min_time},
                                    std::pair{"grpc-keepalive-interval", &cfg.grpc_keepalive_interval},
                                    std::pair{"grpc-keepalive-timeout", &cfg.grpc_keepalive_timeout}}) {
    try {
      parse_go_duration_ms(*value);
    } catch (const std::invalid_argument& e) {
      throw bad(flag, e.what());
    }
  }
  if (cfg.logger != "zap" && cfg.logger != "capnslog")
    throw bad("logger", fmt::format("'{}' is neither zap nor capnslog", cfg.logger));
  static const std::set<std::string> levels = {"debug", "info", "warn", "error", "panic", "fatal"};
  if (!levels.count(cfg.log_level))
    throw bad("log-level", fmt::format("'{}' is not one of debug, info, warn, error, panic, fatal", cfg.log_level));
  if (cfg.max_snapshots == 0) throw bad("max-snapshots", "must be at least 1 (etcd's 0, unlimited, is not supported)");
  if (cfg.max_wals == 0) throw bad("max-wals", "must be at least 1 (etcd's 0, unlimited, is not supported)");

  // TLS: etcd's pairing rules for the client and peer file flags.
  if (cfg.cert_file.empty() != cfg.key_file.empty())
    throw bad(cfg.cert_file.empty() ? "cert-file" : "key-file", "--cert-file and --key-file go together");
  if (cfg.peer_cert_file.empty() != cfg.peer_key_file.empty())
    throw bad(cfg.peer_cert_file.empty() ? "peer-cert-file" : "peer-key-file",
              "--peer-cert-file and --peer-key-file go together");
  if (cfg.client_cert_auth && cfg.trusted_ca_file.empty())
    throw bad("client-cert-auth", "needs --trusted-ca-file (the CA that signs client certificates)");
  if (cfg.peer_auto_tls)
    throw bad("peer-auto-tls",
              "is not supported: balsad's peer transport verifies every peer's certificate against "
              "--peer-trusted-ca-file, which self-signed per-member certificates cannot pass; issue peer "
              "certificates from a CA");
  if (!cfg.cipher_suites.empty()) openssl_cipher_list(cfg.cipher_suites);  // throws naming the suite

  check_urls("listen-client-urls", cfg.listen_client_urls);
  for (const auto& u : split(cfg.listen_client_urls, ','))
    if (parse_url(u).tls && cfg.cert_file.empty() && !cfg.auto_tls)
      throw bad("listen-client-urls", fmt::format("{} is https:// but neither --cert-file/--key-file nor --auto-tls is set", u));
  {
    const auto peers = split(cfg.listen_peer_urls, ',');
    bool tls = false, plain = false;
    for (const auto& u : peers) (parse_url(u).tls ? tls : plain) = true;
    if (tls && plain) throw bad("listen-peer-urls", "mixes http:// and https:// (the peer transport is one listener)");
    if (tls && cfg.peer_cert_file.empty())
      throw bad("listen-peer-urls", "is https:// but --peer-cert-file/--peer-key-file are not set");
    if (tls && cfg.peer_trusted_ca_file.empty())
      throw bad("peer-trusted-ca-file", "is needed with https:// peer URLs: peers are verified against it");
    if (!tls && !cfg.peer_cert_file.empty())
      throw bad("peer-cert-file", "is set but --listen-peer-urls is http:// (use https:// to turn peer TLS on)");
  }
  const auto advertise_client = check_urls("advertise-client-urls", cfg.advertise_client_urls);
  check_urls("listen-peer-urls", cfg.listen_peer_urls);
  const auto advertise_peer = check_urls("initial-advertise-peer-urls", cfg.initial_advertise_peer_urls);
  if (!cfg.listen_metrics_urls.empty()) check_urls("listen-metrics-urls", cfg.listen_metrics_urls);

  Cluster c;
  bool found = false;
  for (const std::string& item : split(cfg.initial_cluster, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw bad("initial-cluster", fmt::format("'{}' is not name=http://host:port", item));
    const std::string name = item.substr(0, eq);
    const std::string url = item.substr(eq + 1);
    try {
      if (parse_url(url).tls != !cfg.peer_cert_file.empty())
        throw std::invalid_argument(fmt::format("{} is {} but this member's peer transport is {}", url,
                                                parse_url(url).tls ? "https://" : "http://",
                                                cfg.peer_cert_file.empty() ? "plaintext" : "TLS"));
    } catch (const std::invalid_argument& e) {
      throw bad("initial-cluster", e.what());
    }
    // etcd allows several URLs per member by repeating the name.
    auto it = std::find_if(c.members.begin(), c.members.end(), [&](const Member& m) { return m.name == name; });
    if (it != c.members.end()) {
      it->peer_urls.push_back(url);
      continue;
    }
    Member m;
    m.name = name;
    m.peer_urls.push_back(url);
    c.members.push_back(std::move(m));
  }
  if (c.members.empty()) throw bad("initial-cluster", "is empty");
  std::set<std::string> seen_urls;
  for (Member& m : c.members) {
    for (const auto& u : m.peer_urls)
      if (!seen_urls.insert(u).second)
        throw bad("initial-cluster", fmt::format("peer URL {} appears more than once", u));
    m.member_id = member_id_for(m.peer_urls, cfg.initial_cluster_token);
    m.node_id = NodeId(m.member_id);
  }
  std::sort(c.members.begin(), c.members.end(),
            [](const Member& a, const Member& b) { return a.member_id < b.member_id; });
  for (size_t i = 0; i < c.members.size(); ++i) {
    if (c.members[i].name == cfg.name) {
      c.self = i;
      found = true;
    }
  }
  if (!found)
    throw bad("initial-cluster", fmt::format("has no member named '{}' (--name)", cfg.name));
  // etcd checks that the advertised peer URLs match the member's entry.
  Member& me = c.members[c.self];
  {
    auto a = advertise_peer, b = me.peer_urls;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b)
      throw bad("initial-advertise-peer-urls",
                fmt::format("{} does not match --initial-cluster's entry for {} ({})", cfg.initial_advertise_peer_urls,
                            cfg.name, fmt::join(me.peer_urls, ",")));
  }
  me.client_urls = advertise_client;
  std::vector<uint64_t> ids;
  for (const Member& m : c.members) ids.push_back(m.member_id);
  c.cluster_id = cluster_id_for(ids);
  return c;
}

}  // namespace balsa::balsad
