#include "balsad/restore.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "balsad/config.h"
#include "balsad/data_dir.h"
#include "balsad/snapshot_file.h"
#include "kv/kv_state_machine.h"
#include "storage/durable_log.h"
#include "storage/fs.h"

namespace balsa::balsad {

namespace {

// The image region of a snapshot file as a ByteSource.
class ImageSource final : public ByteSource {
 public:
  ImageSource(const std::string& path, uint64_t bytes) : in_(path, std::ios::binary), left_(bytes) {
    in_.seekg(static_cast<std::streamoff>(kSnapshotPrefixBytes));
  }
  size_t read(char* buf, size_t n) override {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, left_));
    if (k == 0) return 0;
    if (!in_.read(buf, static_cast<std::streamsize>(k))) throw std::runtime_error("snapshot file: read failed");
    left_ -= k;
    return k;
  }

 private:
  std::ifstream in_;
  uint64_t left_;
};

}  // namespace

int run_restore(int argc, char** argv) {
  Config cfg;
  cfg.initial_advertise_peer_urls = "http://localhost:2380";
  std::string file;
  bool skip_hash_check = false;
  CLI::App app{"balsad restore: build a new member's data dir from a snapshot file saved with\n"
               "'etcdctl snapshot save' from balsad. Run once per member with the same --initial-cluster\n"
               "and --initial-cluster-token, then start each member with those flags."};
  app.add_option("snapshot-file", file, "The snapshot file")->required();
  app.add_option("--name", cfg.name, "Human-readable name for this member")->capture_default_str();
  app.add_option("--data-dir", cfg.data_dir, "Path to the data directory to create (default: <name>.etcd)");
  app.add_option("--wal-dir", cfg.wal_dir, "Path to a dedicated WAL directory");
  app.add_option("--initial-cluster", cfg.initial_cluster,
                 "The new cluster's members: name=http(s)://host:port,... (default: <name>=<initial-advertise-peer-urls>)");
  app.add_option("--initial-cluster-token", cfg.initial_cluster_token, "The new cluster's token")->capture_default_str();
  app.add_option("--initial-advertise-peer-urls", cfg.initial_advertise_peer_urls, "This member's peer URLs")
      ->capture_default_str();
  app.add_flag("--skip-hash-check", skip_hash_check, "Ignore the snapshot's SHA-256 (for a file copied out of a data dir)");
  Cluster cluster;
  try {
    app.parse(argc, argv);
    // Only the membership matters here; peer TLS files are not opened by a restore.
    cfg.listen_peer_urls = cfg.initial_advertise_peer_urls;
    if (cfg.listen_peer_urls.rfind("https://", 0) == 0) {
      cfg.peer_cert_file = cfg.peer_key_file = cfg.peer_trusted_ca_file = "(not used by restore)";
    }
    cluster = resolve(cfg);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "balsad restore: %s\nRun 'balsad restore --help' for the flags.\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "balsad restore: %s\n", e.what());
    return 2;
  }

  std::error_code ec;
  if (std::filesystem::exists(cfg.data_dir, ec)) {
    std::fprintf(stderr, "balsad restore: data-dir %s exists; restore only creates a new one\n", cfg.data_dir.c_str());
    return 1;
  }
  uint64_t image_bytes = 0, index = 0;
  try {
    image_bytes = verify_snapshot_file(file, skip_hash_check);
    // Decode the whole image before writing anything; it names the index it was taken at.
    char head[16];
    ImageSource peek(file, image_bytes);
    if (image_bytes < sizeof head || peek.read(head, sizeof head) != sizeof head)
      throw std::runtime_error("snapshot image too short");
    for (int i = 0; i < 8; ++i) index |= uint64_t{static_cast<unsigned char>(head[8 + i])} << (8 * i);
    if (index == 0) throw std::runtime_error("snapshot image taken before any entry was applied");
    kv::KvStateMachine check;
    ImageSource src(file, image_bytes);
    check.restore_snapshot(src, LogIndex{index});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "balsad restore: %s; nothing was written\n", e.what());
    return 1;
  }

  const std::string member_dir = path_join(cfg.data_dir, "member");
  const std::string raft_dir = path_join(member_dir, "raft");
  try {
    PosixFileSystem fs;
    fs.create_dirs(member_dir);
    if (!write_identity(path_join(member_dir, "balsad-id"), identity_text(cluster)))
      throw std::runtime_error("cannot write " + path_join(member_dir, "balsad-id"));
    if (const std::string why = prepare_wal_dir(cfg, raft_dir, false); !why.empty()) throw std::runtime_error(why);
    fs.create_dirs(raft_dir);
    auto log = DurableLog::open(fs, raft_dir);
    SnapshotMetadata md;
    md.index = LogIndex{index};
    md.term = Term{1};
    for (const Member& m : cluster.members) md.conf.voters.push_back(m.node_id);
    ImageSource src(file, image_bytes);
    log->apply_snapshot(md, src);
    HardState hs;
    hs.term = Term{1};
    hs.commit = LogIndex{index};
    log->persist(&hs, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "balsad restore: %s (remove %s before trying again)\n", e.what(), cfg.data_dir.c_str());
    return 1;
  }
  std::printf("restored snapshot %s into %s: member %s (%s) of cluster %s, %zu members, at index %llu\n",
              file.c_str(), cfg.data_dir.c_str(), hex_id(cluster.me().member_id).c_str(), cluster.me().name.c_str(),
              hex_id(cluster.cluster_id).c_str(), cluster.members.size(), static_cast<unsigned long long>(index));
  return 0;
}

}  // namespace balsa::balsad
