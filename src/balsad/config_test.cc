#include "balsad/config.h"

#include <gtest/gtest.h>

namespace balsa::balsad {
namespace {

TEST(ParseUrl, HostPort) {
  EXPECT_EQ(parse_url("http://127.0.0.1:2379").address(), "127.0.0.1:2379");
  EXPECT_EQ(parse_url("http://localhost:80/").address(), "localhost:80");
  EXPECT_EQ(parse_url("http://[::1]:2380").address(), "[::1]:2380");
  EXPECT_THROW(parse_url("https://127.0.0.1:2379"), std::invalid_argument);
  EXPECT_THROW(parse_url("127.0.0.1:2379"), std::invalid_argument);
  EXPECT_THROW(parse_url("http://127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(parse_url("http://127.0.0.1:99999"), std::invalid_argument);
  EXPECT_THROW(parse_url("http://127.0.0.1:12/x"), std::invalid_argument);
}

Config three(const std::string& name) {
  Config c;
  c.name = name;
  c.initial_cluster = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";
  c.initial_advertise_peer_urls = "http://127.0.0.1:" + std::to_string(name[0] - 'a' + 1);
  c.initial_cluster_token = "tok";
  return c;
}

TEST(Resolve, ThreeMembers) {
  Config ca = three("a"), cb = three("b");
  const Cluster a = resolve(ca), b = resolve(cb);
  ASSERT_EQ(a.members.size(), 3u);
  EXPECT_EQ(a.self, 0u);
  EXPECT_EQ(b.self, 1u);
  EXPECT_EQ(b.me().node_id, NodeId(2));
  EXPECT_EQ(a.cluster_id, b.cluster_id);
  EXPECT_EQ(a.members[2].member_id, b.members[2].member_id);
  EXPECT_NE(a.members[0].member_id, a.members[1].member_id);
  EXPECT_EQ(a.member_id_of(NodeId(3)), a.members[2].member_id);
  EXPECT_EQ(a.member_id_of(kNoNode), 0u);
  EXPECT_EQ(ca.data_dir, "a.etcd");
  // Another token: other ids.
  Config other = three("a");
  other.initial_cluster_token = "tok2";
  EXPECT_NE(resolve(other).cluster_id, a.cluster_id);
}

TEST(Resolve, Errors) {
  Config c = three("d");
  EXPECT_THROW(resolve(c), std::invalid_argument);  // not in the cluster
  c = three("a");
  c.initial_advertise_peer_urls = "http://127.0.0.1:9";
  EXPECT_THROW(resolve(c), std::invalid_argument);
  c = three("a");
  c.initial_cluster_state = "old";
  EXPECT_THROW(resolve(c), std::invalid_argument);
  c = three("a");
  c.election_timeout_ms = 200;
  EXPECT_THROW(resolve(c), std::invalid_argument);
  c = three("a");
  c.initial_cluster = "a";
  EXPECT_THROW(resolve(c), std::invalid_argument);
}

TEST(Resolve, SingleMemberDefaults) {
  Config c;
  const Cluster cl = resolve(c);
  EXPECT_EQ(cl.members.size(), 1u);
  EXPECT_EQ(cl.me().name, "default");
  EXPECT_EQ(cl.me().client_urls, std::vector<std::string>{"http://localhost:2379"});
}

}  // namespace
}  // namespace balsa::balsad
