#include "balsad/config.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "balsad/sha1.h"

namespace balsa::balsad {
namespace {

TEST(ParseUrl, HostPort) {
  EXPECT_EQ(parse_url("http://127.0.0.1:2379").address(), "127.0.0.1:2379");
  EXPECT_EQ(parse_url("http://localhost:80/").address(), "localhost:80");
  EXPECT_EQ(parse_url("http://[::1]:2380").address(), "[::1]:2380");
  EXPECT_TRUE(parse_url("https://127.0.0.1:2379").tls);
  EXPECT_FALSE(parse_url("http://127.0.0.1:2379").tls);
  EXPECT_THROW(parse_url("unix://x:1"), std::invalid_argument);
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
  EXPECT_EQ(a.me().name, "a");
  EXPECT_EQ(b.me().name, "b");
  EXPECT_EQ(b.me().node_id, NodeId(b.me().member_id));
  EXPECT_EQ(a.cluster_id, b.cluster_id);
  EXPECT_EQ(a.members[2].member_id, b.members[2].member_id);
  EXPECT_NE(a.members[0].member_id, a.members[1].member_id);
  EXPECT_EQ(a.member_id_of(a.members[2].node_id), a.members[2].member_id);
  EXPECT_EQ(a.member_id_of(kNoNode), 0u);
  EXPECT_EQ(ca.data_dir, "a.etcd");
  // Members are listed by id, as etcd lists them.
  EXPECT_LT(a.members[0].member_id, a.members[1].member_id);
  EXPECT_LT(a.members[1].member_id, a.members[2].member_id);
  // Another token: other ids.
  Config other = three("a");
  other.initial_cluster_token = "tok2";
  EXPECT_NE(resolve(other).cluster_id, a.cluster_id);
}

TEST(Sha1, KnownVectors) {
  auto hex = [](const std::array<uint8_t, 20>& d) {
    std::string s;
    for (uint8_t b : d) s += fmt::format("{:02x}", b);
    return s;
  };
  EXPECT_EQ(hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(hex(sha1(std::string(1000, 'a'))), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}

// A default single etcd (name "default", peer URL http://localhost:2380, token etcd-cluster)
// is member 8e9e05c52164694d of cluster cdf818194e3a8c32, as `etcdctl member list` shows.
TEST(Resolve, EtcdIds) {
  Config c;
  c.initial_advertise_peer_urls = "http://localhost:2380";
  const Cluster cl = resolve(c);
  EXPECT_EQ(hex_id(cl.me().member_id), "8e9e05c52164694d");
  EXPECT_EQ(hex_id(cl.cluster_id), "cdf818194e3a8c32");
}

// The order of --initial-cluster does not change any id.
TEST(Resolve, OrderIndependent) {
  Config a = three("b"), b = three("b");
  b.initial_cluster = "c=http://127.0.0.1:3,b=http://127.0.0.1:2,a=http://127.0.0.1:1";
  const Cluster ca = resolve(a), cb = resolve(b);
  EXPECT_EQ(ca.cluster_id, cb.cluster_id);
  EXPECT_EQ(ca.me().member_id, cb.me().member_id);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ca.members[i].member_id, cb.members[i].member_id);
    EXPECT_EQ(ca.members[i].name, cb.members[i].name);
  }
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
  c = three("a");
  c.initial_cluster += ",d=http://127.0.0.1:2";  // two members with one peer URL
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

// ---- etcd's configuration sources (config_flags.h), durations, cipher names, snapshot files ----
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>

#include "balsad/config_flags.h"
#include "balsad/snapshot_file.h"
#include "balsad/tls.h"

namespace balsa::balsad {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(GoDuration, Parses) {
  EXPECT_EQ(parse_go_duration_ms("0"), 0);
  EXPECT_EQ(parse_go_duration_ms("5s"), 5000);
  EXPECT_EQ(parse_go_duration_ms("2h"), 7200000);
  EXPECT_EQ(parse_go_duration_ms("1h30m"), 5400000);
  EXPECT_EQ(parse_go_duration_ms("100ms"), 100);
  EXPECT_EQ(parse_go_duration_ms("1.5s"), 1500);
  EXPECT_THROW(parse_go_duration_ms(""), std::invalid_argument);
  EXPECT_THROW(parse_go_duration_ms("5"), std::invalid_argument);
  EXPECT_THROW(parse_go_duration_ms("5x"), std::invalid_argument);
  Config c;
  c.auto_compaction_retention = "3";  // periodic: a bare number counts hours
  EXPECT_EQ(auto_compaction_period_ms(c), 3 * 3600 * 1000);
}

TEST(CipherSuites, GoNamesMapToOpenSsl) {
  EXPECT_EQ(openssl_cipher_list("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384");
  EXPECT_EQ(openssl_cipher_list(""), "");
  EXPECT_THROW(openssl_cipher_list("TLS_RSA_WITH_RC4_128_SHA"), std::invalid_argument);
}

TEST(ConfigFile, ReadsEtcdYaml) {
  Config c;
  load_config_file(write_temp("ok.yaml", "name: m1\n"
                                         "listen-client-urls: [http://127.0.0.1:1, http://127.0.0.1:2]\n"
                                         "max-txn-ops: 7\n"
                                         "pre-vote: true\n"
                                         "enable-v2: false\n"
                                         "proxy: 'off'\n"
                                         "client-transport-security:\n"
                                         "  cert-file: /c.pem\n"
                                         "  client-cert-auth: true\n"
                                         "peer-transport-security:\n"
                                         "  trusted-ca-file: /ca.pem\n"),
                   c);
  EXPECT_EQ(c.name, "m1");
  EXPECT_EQ(c.listen_client_urls, "http://127.0.0.1:1,http://127.0.0.1:2");
  EXPECT_EQ(c.max_txn_ops, 7u);
  EXPECT_TRUE(c.pre_vote);
  EXPECT_EQ(c.cert_file, "/c.pem");
  EXPECT_TRUE(c.client_cert_auth);
  EXPECT_EQ(c.peer_trusted_ca_file, "/ca.pem");
  EXPECT_TRUE(c.key_file.empty());
}

TEST(ConfigFile, RefusesBadFiles) {
  auto message = [](const std::string& text) {
    Config c;
    try {
      load_config_file(write_temp("bad.yaml", text), c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("name: [x\n").find("is not valid YAML: line"), std::string::npos);
  EXPECT_NE(message("name: x\nnmae: y\n").find("line 2: unknown key 'nmae'"), std::string::npos);
  EXPECT_NE(message("enable-v2: true\n").find("enable-v2 is not supported"), std::string::npos);
  EXPECT_NE(message("max-txn-ops: -1\n").find("is not a valid value"), std::string::npos);
  EXPECT_NE(message("peer-transport-security:\n  bogus: 1\n").find("unknown key 'bogus'"), std::string::npos);
  EXPECT_NE(message("- a\n- b\n").find("must be a mapping"), std::string::npos);
}

TEST(EnvVars, ApplyUnlessShadowedByAFlag) {
  ::setenv("ETCD_MAX_TXN_OPS", "9", 1);
  ::setenv("ETCD_NAME", "from-env", 1);
  Config c;
  CLI::App app;
  add_etcd_flags(app, c);
  const char* argv[] = {"balsad", "--name", "from-flag"};
  app.parse(3, const_cast<char**>(argv));
  std::vector<std::string> warnings;
  finish_config(app, c, &warnings);
  ::unsetenv("ETCD_MAX_TXN_OPS");
  ::unsetenv("ETCD_NAME");
  EXPECT_EQ(c.max_txn_ops, 9u);
  EXPECT_EQ(c.name, "from-flag");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("ETCD_NAME is shadowed"), std::string::npos);
}

TEST(SnapshotFile, VerifiesLayoutAndChecksum) {
  const std::string image = "BALSASM2 image bytes";
  std::string file = snapshot_prefix(image.size()) + image + std::string(snapshot_padding(image.size()), '\0');
  ASSERT_EQ(file.size() % kSnapshotAlign, 0u);
  Sha256 sha;
  sha.update(file.data(), file.size());
  file += sha.finish();
  EXPECT_EQ(verify_snapshot_file(write_temp("good.db", file)), image.size());
  std::string altered = file;
  altered[20] ^= 1;
  EXPECT_THROW(verify_snapshot_file(write_temp("altered.db", altered)), std::runtime_error);
  EXPECT_EQ(verify_snapshot_file(write_temp("altered2.db", altered), /*skip_hash_check=*/true), image.size());
  EXPECT_THROW(verify_snapshot_file(write_temp("short.db", file.substr(0, file.size() - 1))), std::runtime_error);
  std::string padded = file;
  padded[kSnapshotPrefixBytes + image.size() + 3] = 'x';  // non-zero padding
  EXPECT_THROW(verify_snapshot_file(write_temp("pad.db", padded), true), std::runtime_error);
}

}  // namespace
}  // namespace balsa::balsad
