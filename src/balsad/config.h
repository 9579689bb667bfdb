// balsad configuration: etcd's flag names, URL parsing, member and cluster ids.
//
// Ids follow etcd's idea (not its exact bytes): a member id is a stable 64-bit hash of the
// member's name and the cluster token; the cluster id is a hash of the token and the sorted
// member ids. The Raft NodeId of a member is its position in --initial-cluster plus one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace balsa::balsad {

// "http://host:port" -> {host, port}. Throws std::invalid_argument on anything else
// (https is refused: balsad has no client/peer TLS flags yet).
struct HostPort {
  std::string host;
  int port = 0;
  std::string address() const;  // "host:port" ([host]:port for IPv6 literals)
};
HostPort parse_url(const std::string& url);
std::vector<std::string> split(const std::string& s, char sep);

struct Member {
  std::string name;
  NodeId node_id;                      // Raft id: index in --initial-cluster + 1
  uint64_t member_id = 0;              // etcd-style member id
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;  // known for this member only
};

struct Config {
  std::string name = "default";
  std::string data_dir;  // default: "<name>.etcd", as etcd
  std::string listen_client_urls = "http://localhost:2379";
  std::string advertise_client_urls = "http://localhost:2379";
  std::string listen_peer_urls = "http://localhost:2380";
  std::string initial_advertise_peer_urls = "http://localhost:2380";
  std::string initial_cluster;  // default: "<name>=<initial-advertise-peer-urls>"
  std::string initial_cluster_state = "new";
  std::string initial_cluster_token = "etcd-cluster";
  int heartbeat_interval_ms = 100;
  int election_timeout_ms = 1000;
  uint64_t snapshot_count = 100000;
  std::string listen_metrics_urls;
  std::string log_level = "info";
};

uint64_t member_id_for(const std::string& name, const std::string& token);
uint64_t cluster_id_for(const std::string& token, std::vector<uint64_t> member_ids);

// The resolved cluster: every member, this member's index, the cluster id.
struct Cluster {
  uint64_t cluster_id = 0;
  std::vector<Member> members;
  size_t self = 0;

  const Member& me() const { return members[self]; }
  // 0 if `id` is not a member (e.g. kNoNode).
  uint64_t member_id_of(NodeId id) const;
};

// Validates `cfg` (fills defaults) and resolves the cluster. Throws std::invalid_argument with a
// message naming the bad flag.
Cluster resolve(Config& cfg);

std::string hex_id(uint64_t id);

}  // namespace balsa::balsad
