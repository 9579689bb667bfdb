#include "balsad/config.h"

#include "balsad/sha1.h"

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
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument(fmt::format("URL '{}' must start with http:// (TLS is not supported yet)", url));
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos)
    throw std::invalid_argument(fmt::format("URL '{}' must not have a path", url));
  HostPort hp;
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
  check_urls("listen-client-urls", cfg.listen_client_urls);
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
      parse_url(url);
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
