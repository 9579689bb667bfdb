// Real processes, real disk: balsa_wal_writer appends and fsyncs, printing each acknowledged
// index; we SIGKILL it at random moments, many times, and after each kill check that every
// acknowledged entry is in the log with the right contents and that the log verifies. The writer
// then restarts on the same directory (recovering, and continuing after what it finds).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "storage/test_util.h"
#include "storage/wal.h"

#ifndef BALSA_WAL_WRITER_PATH
#error "BALSA_WAL_WRITER_PATH must name the balsa_wal_writer executable"
#endif

namespace balsa {
namespace {

struct Child {
  pid_t pid;
  int out;  // read end of its stdout
};

Child spawn(const std::string& dir, uint64_t seed) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    const std::string s = std::to_string(seed);
    ::execl(BALSA_WAL_WRITER_PATH, BALSA_WAL_WRITER_PATH, dir.c_str(), s.c_str(), "262144",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  return Child{pid, fds[0]};
}

// Reads complete lines ("<index>\n") until the deadline or EOF; returns the highest index.
uint64_t read_acks(int fd, std::string& buf, std::chrono::steady_clock::time_point until,
                   uint64_t acked) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    const int timeout = until == std::chrono::steady_clock::time_point::max() ? -1
                        : left > 0 ? static_cast<int>(left) : 0;
    if (::poll(&p, 1, timeout) <= 0) return acked;
    char tmp[4096];
    const ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) return acked;
    buf.append(tmp, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      acked = std::max<uint64_t>(acked, std::stoull(buf.substr(0, nl)));
      buf.erase(0, nl + 1);
    }
  }
}

TEST(WalKill, AcknowledgedEntriesSurviveSigkill) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/wal";
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));  // kill timing is random; the seed picks batches
  std::mt19937_64 rng(seed);
  const auto test_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  uint64_t acked = 0;
  int kills = 0;
  for (int iter = 0; iter < 30 && std::chrono::steady_clock::now() < test_deadline; ++iter) {
    Child c = spawn(dir, rng());
    std::string buf;
    const auto run_for = std::chrono::microseconds(2000 + rng() % 80000);
    acked = read_acks(c.out, buf, std::chrono::steady_clock::now() + run_for, acked);
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited on its own, status " << status;
    // Lines already in the pipe were printed after save() returned: they count as acks too.
    acked = read_acks(c.out, buf, std::chrono::steady_clock::time_point::max(), acked);
    ::close(c.out);
    ++kills;

    PosixFileSystem fs;
    WalOptions ro;
    ro.read_only = true;
    ro.segment_bytes = 262144;
    WalRecovery rec;
    ASSERT_NO_THROW(rec = Wal::open(fs, dir, ro).recovered) << "iteration " << iter;
    ASSERT_GE(rec.entries.size(), acked) << "iteration " << iter << ": acknowledged entries lost";
    for (uint64_t i = 1; i <= rec.entries.size(); ++i) {
      ASSERT_EQ(rec.entries[i - 1].index, LogIndex{i});
      ASSERT_EQ(rec.entries[i - 1].data, testing::writer_payload(i)) << "entry " << i;
    }
    ASSERT_LE(rec.hard_state.commit.value, rec.entries.size());
  }
  EXPECT_GE(kills, 10);
  EXPECT_GT(acked, 100u);
  std::printf("%d kills, %llu entries acknowledged\n", kills, static_cast<unsigned long long>(acked));
}

}  // namespace
}  // namespace balsa
