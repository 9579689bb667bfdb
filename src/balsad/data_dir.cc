#include "balsad/data_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

namespace balsa::balsad {

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

// --wal-dir: the WAL lives there; <data-dir>/member/raft/wal is a symlink to it (made on the
// first start), so restarts must name the same --wal-dir. Returns an error text or "".
std::string prepare_wal_dir(const Config& cfg, const std::string& raft_dir, bool has_log) {
  namespace fs = std::filesystem;
  const fs::path link = fs::path(raft_dir) / "wal";
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(link, ec);
  if (cfg.wal_dir.empty()) {
    if (fs::is_symlink(st))
      return "the data dir's WAL is in " + fs::read_symlink(link, ec).string() + ": pass --wal-dir " +
             fs::read_symlink(link, ec).string();
    return "";
  }
  fs::create_directories(cfg.wal_dir, ec);
  if (ec) return "--wal-dir " + cfg.wal_dir + ": " + ec.message();
  const fs::path want = fs::canonical(cfg.wal_dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_symlink(st))
      return "the data dir holds its WAL itself (" + link.string() + "); moving it to --wal-dir is not supported";
    if (fs::canonical(link, ec) != want)
      return "the data dir's WAL is in " + fs::read_symlink(link, ec).string() + ", not --wal-dir " + cfg.wal_dir;
    return "";
  }
  if (has_log) return "the data dir has a Raft log but no WAL; refusing to start";
  fs::create_directories(raft_dir, ec);
  fs::create_directory_symlink(want, link, ec);
  if (ec) return "cannot link " + link.string() + " to --wal-dir: " + ec.message();
  const int dfd = ::open(raft_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return "";
}

}  // namespace balsa::balsad
