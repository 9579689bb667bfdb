#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/fs.h"

namespace balsa {
namespace {

[[noreturn]] void fail(const char* op, const std::string& path, int err) {
  throw IoError(std::string(op) + " " + path + ": " + std::strerror(err));
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override {
    unmap();
    ::close(fd_);
  }

  void write_at(uint64_t offset, std::string_view data) override {
    const char* p = data.data();
    size_t left = data.size();
    auto off = static_cast<off_t>(offset);
    while (left > 0) {
      const ssize_t n = ::pwrite(fd_, p, left, off);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("pwrite", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
      off += n;
    }
  }

  size_t read_at(uint64_t offset, char* buf, size_t n) override {
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_, buf + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail("pread", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

  void sync() override {
    if (::fdatasync(fd_) != 0) fail("fdatasync", path_, errno);
  }

  void allocate(uint64_t bytes) override {
    const int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes));
    if (rc == 0) return;
    // Some file systems (tmpfs on old kernels, some overlays) lack fallocate; a sparse extension
    // keeps the format identical, only the fdatasync latency benefit is lost.
    if (rc == EOPNOTSUPP || rc == EINVAL) {
      if (size() < bytes && ::ftruncate(fd_, static_cast<off_t>(bytes)) != 0)
        fail("ftruncate", path_, errno);
      return;
    }
    fail("fallocate", path_, rc);
  }

  void truncate(uint64_t bytes) override {
    if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) fail("ftruncate", path_, errno);
  }

  uint64_t size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail("fstat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  std::string_view map(uint64_t n) override {
    unmap();
    if (n == 0) return {};
    void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) return {};
    ::madvise(p, n, MADV_SEQUENTIAL);  // read ahead generously; a hint, errors do not matter
    map_ = p;
    map_bytes_ = n;
    return {static_cast<const char*>(p), n};
  }

 private:
  void unmap() {
    if (map_) ::munmap(map_, map_bytes_);
    map_ = nullptr;
  }

  int fd_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::string path_;
};

}  // namespace

std::unique_ptr<File> PosixFileSystem::open(const std::string& path, OpenMode mode) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case OpenMode::kRead: flags |= O_RDONLY; break;
    case OpenMode::kReadWrite: flags |= O_RDWR; break;
    case OpenMode::kCreate: flags |= O_RDWR | O_CREAT | O_EXCL; break;
  }
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) fail("open", path, errno);
  return std::make_unique<PosixFile>(fd, path);
}

std::vector<std::string> PosixFileSystem::list(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) fail("opendir", dir, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::stat(path_join(dir, name).c_str(), &st) == 0 && S_ISREG(st.st_mode))
      names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool PosixFileSystem::exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void PosixFileSystem::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) fail("rename", from + " -> " + to, errno);
}

void PosixFileSystem::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0) fail("unlink", path, errno);
}

void PosixFileSystem::sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open dir", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("fsync dir", dir, err);
}

void PosixFileSystem::create_dirs(const std::string& dir) {
  if (dir.empty() || exists(dir)) return;
  const auto slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
  const std::string parent = slash == std::string::npos ? "." : dir.substr(0, slash == 0 ? 1 : slash);
  create_dirs(parent);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail("mkdir", dir, errno);
  sync_dir(parent);
}

std::string read_all(File& f) {
  std::string out(f.size(), '\0');
  out.resize(f.read_at(0, out.data(), out.size()));
  return out;
}

}  // namespace balsa
