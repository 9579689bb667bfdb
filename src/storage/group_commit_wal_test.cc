#include "storage/group_commit_wal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "storage/sim_fs.h"

namespace balsa {
namespace {

TEST(GroupCommitWal, ConcurrentProducersShareSyncsAndEveryAppendIsDurable) {
  SimFileSystem fs;
  auto opened = Wal::open(fs, "/wal", WalOptions{.segment_bytes = 64 << 10});
  constexpr int kThreads = 16, kPerThread = 200;
  std::vector<std::vector<LogIndex>> acked(kThreads);
  uint64_t syncs = 0;
  {
    GroupCommitWal gc(*opened.wal);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i)
          acked[t].push_back(gc.append(Term{1}, {std::to_string(t) + ":" + std::to_string(i)}));
      });
    }
    for (auto& th : threads) th.join();
    syncs = gc.syncs();
  }
  EXPECT_LT(syncs, static_cast<uint64_t>(kThreads * kPerThread));
  opened.wal.reset();
  fs.crash(1);  // only synced data remains
  auto r = Wal::open(fs, "/wal", WalOptions{.segment_bytes = 64 << 10});
  ASSERT_EQ(r.recovered.entries.size(), static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const Entry& e = r.recovered.entries[acked[t][i].value - 1];
      EXPECT_EQ(e.data, std::to_string(t) + ":" + std::to_string(i));
    }
  }
}

// Blocking appends sleep on their batch's futex word and async ones get callbacks, in the same
// batches; a lone producer is woken by the syncer itself. Every append completes exactly once,
// indexes are contiguous and each holds its own payload.
TEST(GroupCommitWal, BlockingAndAsyncAppendsShareBatches) {
  SimFileSystem fs;
  auto opened = Wal::open(fs, "/wal", WalOptions{.segment_bytes = 64 << 10});
  constexpr int kBlocking = 6, kAsync = 2, kPerThread = 150;
  std::mutex mu;
  std::map<uint64_t, std::string> acked;  // index -> payload
  std::atomic<int> callbacks{0};
  {
    GroupCommitWal gc(*opened.wal);
    EXPECT_EQ(gc.append(Term{1}, {"alone"}), LogIndex{1});  // the inline wake path
    std::vector<std::thread> threads;
    for (int t = 0; t < kBlocking + kAsync; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          std::string payload = std::to_string(t) + ":" + std::to_string(i);
          if (t < kBlocking) {
            const LogIndex at = gc.append(Term{1}, {payload, payload + "b"});
            std::lock_guard lock(mu);
            EXPECT_TRUE(acked.emplace(at.value - 1, payload).second);
            EXPECT_TRUE(acked.emplace(at.value, payload + "b").second);
          } else {
            gc.append_async(Term{1}, {payload},
                            [&, payload](LogIndex first, LogIndex last, std::exception_ptr err) {
                              EXPECT_FALSE(err);
                              EXPECT_EQ(first, last);
                              std::lock_guard lock(mu);
                              EXPECT_TRUE(acked.emplace(first.value, payload).second);
                              ++callbacks;
                            });
          }
        }
      });
    }
    for (auto& th : threads) th.join();
  }  // the destructor waits for the async appends
  EXPECT_EQ(callbacks.load(), kAsync * kPerThread);
  const size_t total = 1 + (2 * kBlocking + kAsync) * kPerThread;
  opened.wal.reset();
  fs.crash(2);
  auto r = Wal::open(fs, "/wal", WalOptions{.segment_bytes = 64 << 10});
  ASSERT_EQ(r.recovered.entries.size(), total);
  ASSERT_EQ(acked.size(), total - 1);
  for (const auto& [index, payload] : acked) EXPECT_EQ(r.recovered.entries[index - 1].data, payload);
}

TEST(GroupCommitWal, FailureIsReportedToEveryoneAfterwards) {
  SimFileSystem fs;
  auto opened = Wal::open(fs, "/wal");
  GroupCommitWal gc(*opened.wal);
  EXPECT_EQ(gc.append(Term{1}, {"a"}), LogIndex{1});
  fs.fail_next_sync();
  EXPECT_THROW(gc.append(Term{1}, {"b"}), StorageFatalError);
  EXPECT_THROW(gc.append(Term{1}, {"c"}), StorageFatalError);
  std::atomic<bool> called{false};
  gc.append_async(Term{1}, {"d"}, [&](LogIndex, LogIndex, std::exception_ptr err) {
    EXPECT_TRUE(err);
    called = true;
  });
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace balsa
