// balsad configuration: etcd's flag names, URL parsing, member and cluster ids.
//
// Ids are etcd's, bit for bit: a member id is the first 8 bytes (big-endian) of SHA-1 over the
// member's sorted peer URLs concatenated, then the cluster token; the cluster id is the same
// over the sorted member ids (8 bytes big-endian each). So the ids do not depend on the order of
// --initial-cluster, and a balsad member has the id etcd would give it. The Raft NodeId of a
// member is its member id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace balsa::balsad {

// "http://host:port" or "https://host:port" -> {host, port, tls}. Throws std::invalid_argument
// on anything else (unix:// and paths are refused).
struct HostPort {
  std::string host;
  int port = 0;
  bool tls = false;  // https://
  std::string address() const;  // "host:port" ([host]:port for IPv6 literals)
};
HostPort parse_url(const std::string& url);
std::vector<std::string> split(const std::string& s, char sep);

struct Member {
  std::string name;
  NodeId node_id;                      // Raft id: equal to member_id
  uint64_t member_id = 0;              // etcd's member id
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;  // from the flags for this member; others publish theirs
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

  // Client TLS (etcd's client-transport-security) and peer TLS (peer-transport-security).
  std::string cert_file, key_file, trusted_ca_file;
  bool client_cert_auth = false;
  bool auto_tls = false;
  std::string peer_cert_file, peer_key_file, peer_trusted_ca_file;
  bool peer_client_cert_auth = false;
  bool peer_auto_tls = false;
  std::string cipher_suites;  // Go's names, comma-separated

  // etcd's limits, storage and operations flags, with etcd 3.4's defaults.
  int64_t quota_backend_bytes = 0;  // 0: etcd's default quota, 2 GiB
  std::string auto_compaction_mode = "periodic";
  std::string auto_compaction_retention = "0";
  uint64_t max_request_bytes = 1572864;
  uint64_t max_txn_ops = 128;
  std::string wal_dir;
  uint64_t max_snapshots = 5;
  uint64_t max_wals = 5;
  std::string logger = "capnslog";
  std::string log_outputs = "default";
  std::string grpc_keepalive_min_time = "5s";
  std::string grpc_keepalive_interval = "2h";
  std::string grpc_keepalive_timeout = "20s";
  bool pre_vote = false;
  bool force_new_cluster = false;
  bool strict_reconfig_check = true;
  bool enable_grpc_gateway = true;
  bool debug = false;
  std::string config_file;
};

// Go duration ("5s", "2h", "1h30m", "100ms", "0") -> milliseconds. Throws std::invalid_argument.
int64_t parse_go_duration_ms(const std::string& s);

// --auto-compaction-retention in periodic mode, in ms (a bare number counts hours, as etcd).
int64_t auto_compaction_period_ms(const Config& cfg);

// Quota in bytes that --quota-backend-bytes resolves to (0 -> 2 GiB, as etcd).
int64_t effective_quota_bytes(const Config& cfg);

// etcd's membership.newMember / RaftCluster.genID.
uint64_t member_id_for(std::vector<std::string> peer_urls, const std::string& token);
uint64_t cluster_id_for(std::vector<uint64_t> member_ids);

// The resolved cluster: every member, this member's index, the cluster id.
struct Cluster {
  uint64_t cluster_id = 0;
  std::vector<Member> members;
  size_t self = 0;

  const Member& me() const { return members[self]; }
  const Member* find(uint64_t member_id) const;
  // 0 if `id` is not a member (e.g. kNoNode).
  uint64_t member_id_of(NodeId id) const;
};

// Validates `cfg` (fills defaults) and resolves the cluster. Throws std::invalid_argument with a
// message naming the bad flag.
Cluster resolve(Config& cfg);

std::string hex_id(uint64_t id);

}  // namespace balsa::balsad
