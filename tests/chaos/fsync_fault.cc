// LD_PRELOAD shim that makes fsync / fdatasync fail with EIO or stall, on command.
//
//   BALSA_FSYNC_FAULT=/path/to/control  LD_PRELOAD=libbalsa_fsync_fault.so  balsad ...
//
// The control file is re-read whenever its mtime or size changes (one stat per call). It holds
// one line:
//   ok            pass through (also: file absent or empty)
//   eio           every fsync/fdatasync on a file under BALSA_FSYNC_FAULT_PREFIX (default: any
//                 file) fails with EIO, without syncing
//   delay MS      each call sleeps MS milliseconds, then syncs
// Every injected fault is counted in a line appended to "<control>.log" ("eio <path>" /
// "delay <ms> <path>") so the harness can tell what was injected.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace {

using SyncFn = int (*)(int);

enum class Mode { kOk, kEio, kDelay };

struct Control {
  std::mutex mu;
  struct timespec mtime {};
  off_t size = -1;
  Mode mode = Mode::kOk;
  long delay_ms = 0;
};

Control& control() {
  static Control c;
  return c;
}

SyncFn real(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (!f) {
    fprintf(stderr, "fsync_fault: dlsym(%s) failed\n", name);
    abort();
  }
  return reinterpret_cast<SyncFn>(f);
}

void refresh(Control& c, const char* path) {
  struct stat st {};
  if (stat(path, &st) != 0) {
    c.mode = Mode::kOk;
    c.size = -1;
    return;
  }
  if (st.st_mtim.tv_sec == c.mtime.tv_sec && st.st_mtim.tv_nsec == c.mtime.tv_nsec && st.st_size == c.size) return;
  c.mtime = st.st_mtim;
  c.size = st.st_size;
  c.mode = Mode::kOk;
  char buf[64] = {0};
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  if (strncmp(buf, "eio", 3) == 0) c.mode = Mode::kEio;
  else if (strncmp(buf, "delay", 5) == 0) {
    c.mode = Mode::kDelay;
    c.delay_ms = strtol(buf + 5, nullptr, 10);
  }
}

void fd_path(int fd, char* out, size_t n) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t r = readlink(link, out, n - 1);
  out[r > 0 ? r : 0] = 0;
}

void note(const char* ctl, const char* what, const char* path) {
  char log[PATH_MAX];
  snprintf(log, sizeof log, "%s.log", ctl);
  const int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[PATH_MAX + 64];
  const int len = snprintf(line, sizeof line, "%s %s\n", what, path);
  if (len > 0) (void)!write(fd, line, static_cast<size_t>(len));
  close(fd);
}

int faulty(int fd, SyncFn fn) {
  const char* ctl = getenv("BALSA_FSYNC_FAULT");
  if (!ctl) return fn(fd);
  Control& c = control();
  Mode mode;
  long delay_ms;
  {
    std::lock_guard lk(c.mu);
    refresh(c, ctl);
    mode = c.mode;
    delay_ms = c.delay_ms;
  }
  if (mode == Mode::kOk) return fn(fd);
  char path[PATH_MAX];
  fd_path(fd, path, sizeof path);
  const char* prefix = getenv("BALSA_FSYNC_FAULT_PREFIX");
  if (prefix && strncmp(path, prefix, strlen(prefix)) != 0) return fn(fd);
  if (mode == Mode::kEio) {
    note(ctl, "eio", path);
    errno = EIO;
    return -1;
  }
  char what[32];
  snprintf(what, sizeof what, "delay %ld", delay_ms);
  note(ctl, what, path);
  struct timespec ts {delay_ms / 1000, (delay_ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return fn(fd);
}

}  // namespace

extern "C" int fsync(int fd) {
  static SyncFn fn = real("fsync");
  return faulty(fd, fn);
}

extern "C" int fdatasync(int fd) {
  static SyncFn fn = real("fdatasync");
  return faulty(fd, fn);
}
