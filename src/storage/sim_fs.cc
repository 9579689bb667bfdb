#include "storage/sim_fs.h"

#include <algorithm>

namespace balsa {

class SimFileSystem::SimFile final : public File {
 public:
  SimFile(SimFileSystem* fs, std::shared_ptr<Inode> inode, std::string path, bool writable)
      : fs_(fs), inode_(std::move(inode)), path_(std::move(path)), writable_(writable) {}

  void write_at(uint64_t offset, std::string_view data) override {
    std::lock_guard lock(fs_->mu_);
    check_writable();
    if (fs_->fire(&fs_->fail_write_)) {
      throw IoError("pwrite " + path_ + ": simulated I/O error");
    }
    Op op{true, offset, std::string(data)};
    apply(inode_->data, op);
    inode_->unsynced.push_back(std::move(op));
  }

  size_t read_at(uint64_t offset, char* buf, size_t n) override {
    std::lock_guard lock(fs_->mu_);
    const std::string& d = inode_->data;
    if (offset >= d.size()) return 0;
    const size_t k = std::min<uint64_t>(n, d.size() - offset);
    std::copy_n(d.data() + offset, k, buf);
    return k;
  }

  void sync() override {
    std::lock_guard lock(fs_->mu_);
    if (fs_->fire(&fs_->fail_sync_)) {
      throw IoError("fdatasync " + path_ + ": simulated I/O error");
    }
    ++fs_->syncs_;
    inode_->unsynced.clear();
  }

  void allocate(uint64_t bytes) override {
    std::lock_guard lock(fs_->mu_);
    check_writable();
    if (inode_->data.size() >= bytes) return;
    Op op{false, bytes, {}};
    apply(inode_->data, op);
    inode_->unsynced.push_back(std::move(op));
  }

  void truncate(uint64_t bytes) override {
    std::lock_guard lock(fs_->mu_);
    check_writable();
    Op op{false, bytes, {}};
    apply(inode_->data, op);
    inode_->unsynced.push_back(std::move(op));
  }

  uint64_t size() override {
    std::lock_guard lock(fs_->mu_);
    return inode_->data.size();
  }

 private:
  void check_writable() const {
    if (!writable_) throw IoError(path_ + ": file opened read-only");
  }
  SimFileSystem* fs_;
  std::shared_ptr<Inode> inode_;
  std::string path_;
  bool writable_;
};

void SimFileSystem::apply(std::string& data, Op& op) {
  op.old_size = data.size();
  if (!op.is_write) {
    op.old_bytes = op.offset < data.size() ? data.substr(op.offset) : std::string();
    data.resize(op.offset, '\0');
    return;
  }
  op.old_bytes = op.offset < data.size() ? data.substr(op.offset, op.data.size()) : std::string();
  if (data.size() < op.offset + op.data.size()) data.resize(op.offset + op.data.size(), '\0');
  std::copy(op.data.begin(), op.data.end(), data.begin() + static_cast<std::ptrdiff_t>(op.offset));
}

void SimFileSystem::undo(std::string& data, const Op& op) {
  data.resize(op.old_size, '\0');
  if (!op.old_bytes.empty()) data.replace(op.offset, op.old_bytes.size(), op.old_bytes);
}

SimFileSystem::Dir& SimFileSystem::dir_of(const std::string& path, std::string* name) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  *name = slash == std::string::npos ? path : path.substr(slash + 1);
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) throw IoError(path + ": no such directory");
  return it->second;
}

std::unique_ptr<File> SimFileSystem::open(const std::string& path, OpenMode mode) {
  std::lock_guard lock(mu_);
  std::string name;
  Dir& d = dir_of(path, &name);
  auto it = d.live.find(name);
  if (mode == OpenMode::kCreate) {
    if (it != d.live.end()) throw IoError("open " + path + ": file exists");
    auto inode = std::make_shared<Inode>();
    d.live[name] = inode;
    return std::make_unique<SimFile>(this, inode, path, true);
  }
  if (it == d.live.end()) throw IoError("open " + path + ": no such file");
  return std::make_unique<SimFile>(this, it->second, path, mode == OpenMode::kReadWrite);
}

std::vector<std::string> SimFileSystem::list(const std::string& dir) {
  std::lock_guard lock(mu_);
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) throw IoError("opendir " + dir + ": no such directory");
  std::vector<std::string> out;
  for (const auto& [name, inode] : it->second.live) out.push_back(name);
  return out;  // std::map keeps them sorted
}

bool SimFileSystem::exists(const std::string& path) {
  std::lock_guard lock(mu_);
  if (dirs_.count(path) != 0) return true;
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  auto it = dirs_.find(dir);
  return it != dirs_.end() && it->second.live.count(path.substr(slash + 1)) != 0;
}

void SimFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  std::string from_name, to_name;
  Dir& a = dir_of(from, &from_name);
  Dir& b = dir_of(to, &to_name);
  auto it = a.live.find(from_name);
  if (it == a.live.end()) throw IoError("rename " + from + ": no such file");
  auto inode = it->second;
  a.live.erase(it);
  b.live[to_name] = std::move(inode);
}

void SimFileSystem::remove(const std::string& path) {
  std::lock_guard lock(mu_);
  std::string name;
  Dir& d = dir_of(path, &name);
  if (d.live.erase(name) == 0) throw IoError("unlink " + path + ": no such file");
}

void SimFileSystem::sync_dir(const std::string& dir) {
  std::lock_guard lock(mu_);
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) throw IoError("fsync dir " + dir + ": no such directory");
  if (fire(&fail_sync_)) {
    throw IoError("fsync dir " + dir + ": simulated I/O error");
  }
  ++syncs_;
  it->second.durable = it->second.live;
}

void SimFileSystem::create_dirs(const std::string& dir) {
  std::lock_guard lock(mu_);
  std::string d = dir;
  while (!d.empty() && d != "." && d != "/") {
    dirs_.try_emplace(d);
    const auto slash = d.find_last_of('/');
    if (slash == std::string::npos || slash == 0) break;
    d = d.substr(0, slash);
  }
}

template <typename Redo>
void SimFileSystem::crash_with(Redo&& redo) {
  std::vector<std::shared_ptr<Inode>> seen;
  for (auto& [path, d] : dirs_) {
    d.live = d.durable;
    for (auto& [name, inode] : d.live) {
      if (std::find(seen.begin(), seen.end(), inode) != seen.end()) continue;
      seen.push_back(inode);
      auto& ops = inode->unsynced;
      for (auto it = ops.rbegin(); it != ops.rend(); ++it) undo(inode->data, *it);  // durable
      if (!ops.empty()) redo(path_join(path, name), *inode);
      ops.clear();
    }
  }
}

void SimFileSystem::crash(std::mt19937_64& rng) {
  std::lock_guard lock(mu_);
  crash_with([&](const std::string&, Inode& inode) {
    std::string& data = inode.data;
    auto& ops = inode.unsynced;
    const size_t n = ops.size();
    if (rng() & 1) {
      const size_t keep = rng() % (n + 1);
      for (size_t i = 0; i < keep; ++i) apply(data, ops[i]);
      if (keep < n && ops[keep].is_write && !ops[keep].data.empty()) {
        Op torn = ops[keep];
        torn.data.resize(rng() % torn.data.size());
        apply(data, torn);
      }
    }
  });
}

void SimFileSystem::crash_keeping(const std::string& path, uint64_t bytes) {
  std::lock_guard lock(mu_);
  crash_with([&](const std::string& p, Inode& inode) {
    if (p != path) return;
    uint64_t budget = bytes;
    for (Op& op : inode.unsynced) {
      if (budget == 0) break;
      if (!op.is_write) {
        apply(inode.data, op);
        continue;
      }
      Op kept = op;
      if (kept.data.size() > budget) kept.data.resize(budget);
      budget -= kept.data.size();
      apply(inode.data, kept);
    }
  });
}

void SimFileSystem::fail_write_in(int n) {
  std::lock_guard lock(mu_);
  fail_write_ = n;
}

void SimFileSystem::fail_sync_in(int n) {
  std::lock_guard lock(mu_);
  fail_sync_ = n;
}

void SimFileSystem::clear_faults() {
  std::lock_guard lock(mu_);
  fail_write_ = fail_sync_ = 0;
}

std::string SimFileSystem::contents(const std::string& path) {
  std::lock_guard lock(mu_);
  std::string name;
  Dir& d = dir_of(path, &name);
  auto it = d.live.find(name);
  if (it == d.live.end()) throw IoError(path + ": no such file");
  return it->second->data;
}

void SimFileSystem::set_contents(const std::string& path, std::string data) {
  std::lock_guard lock(mu_);
  std::string name;
  Dir& d = dir_of(path, &name);
  auto& inode = d.live[name];
  if (!inode) inode = std::make_shared<Inode>();
  inode->data = std::move(data);
  inode->unsynced.clear();
  d.durable[name] = inode;
}

uint64_t SimFileSystem::sync_count() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

}  // namespace balsa
