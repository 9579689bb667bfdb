// The Node runtime end to end in one process: real DurableLog on a temp dir, the in-process
// loopback transport, and a small state machine.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>

#include "core/codec.h"
#include "runtime/node.h"
#include "storage/fs.h"
#include "transport/loopback_transport.h"

namespace balsa {
namespace {

using namespace std::chrono_literals;

// Applies commands to an ordered list; the result of a command is "<index>:<command>".
class ListMachine final : public StateMachine {
 public:
  void apply(std::span<const Entry> entries, std::vector<std::string>* results) override {
    std::lock_guard lk(mu_);
    for (const Entry& e : entries) {
      applied_ = e.index;
      if (!e.data.empty()) items_.push_back(e.data);
      results->push_back(std::to_string(e.index.value) + ":" + e.data);
    }
  }
  LogIndex applied_index() const override {
    std::lock_guard lk(mu_);
    return applied_;
  }
  void save_snapshot(ByteSink& out) override {
    std::lock_guard lk(mu_);
    codec::Writer w;
    w.u64(applied_.value);
    w.u64(items_.size());
    for (auto& s : items_) w.bytes(s);
    out.write(w.out());
  }
  // With `async`, the runtime writes the image on its background thread.
  std::function<void(ByteSink&)> snapshot_image() override {
    if (!async) return {};
    auto image = std::make_shared<StringSink>();
    save_snapshot(*image);
    return [image](ByteSink& out) { out.write(image->out); };
  }
  bool async = false;
  void restore_snapshot(ByteSource& in, LogIndex index) override {
    std::string all;
    char buf[4096];
    while (size_t n = in.read(buf, sizeof buf)) all.append(buf, n);
    codec::Reader r(all);
    uint64_t applied = 0, count = 0;
    ASSERT_TRUE(r.u64(&applied) && r.u64(&count));
    std::vector<std::string> items(count);
    for (auto& s : items) ASSERT_TRUE(r.bytes(&s));
    std::lock_guard lk(mu_);
    EXPECT_EQ(applied, index.value);
    applied_ = index;
    items_ = std::move(items);
  }
  std::vector<std::string> items() const {
    std::lock_guard lk(mu_);
    return items_;
  }

 private:
  mutable std::mutex mu_;
  LogIndex applied_;
  std::vector<std::string> items_;
};

struct Member {
  std::string dir;
  std::unique_ptr<DurableLog> log;
  ListMachine sm;
  std::unique_ptr<LoopbackTransport> transport;
  std::unique_ptr<Node> node;
};

class NodeCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("balsa-node-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    net_ = std::make_shared<LoopbackNetwork>();
    members_.resize(3);
    for (int i = 0; i < 3; ++i) start(i);
  }
  void TearDown() override {
    for (auto& m : members_)
      if (m && m->node) m->node->stop();
    members_.clear();
    std::filesystem::remove_all(root_);
  }

  NodeOptions options(int i) {
    NodeOptions o;
    o.id = NodeId{static_cast<uint64_t>(i + 1)};
    o.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
    o.tick_interval = 10ms;
    o.election_ticks = 10;
    o.snapshot_entries = snapshot_entries_;
    o.max_pending_bytes = max_pending_bytes_;
    o.catchup_entries = 5;
    o.request_timeout = 3s;
    o.seed = 1000 + static_cast<uint64_t>(i);
    return o;
  }

  void start(int i) {
    auto m = std::make_unique<Member>();
    m->dir = (root_ / ("n" + std::to_string(i + 1))).string();
    m->log = DurableLog::open(fs_, m->dir);
    m->sm.async = async_snapshots_;
    m->transport = std::make_unique<LoopbackTransport>(net_, NodeId{static_cast<uint64_t>(i + 1)});
    for (uint64_t p = 1; p <= 3; ++p)
      if (p != static_cast<uint64_t>(i + 1)) m->transport->add_peer(NodeId{p}, "");
    m->node = std::make_unique<Node>(options(i), *m->log, m->sm, *m->transport);
    m->node->start();
    members_[i] = std::move(m);
  }
  void kill(int i) {
    members_[i]->node->stop();
    members_[i].reset();
  }

  // Waits for a leader that every live member agrees on.
  int wait_leader(std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      NodeId leader = kNoNode;
      bool agree = true;
      int index = -1;
      for (int i = 0; i < 3; ++i) {
        if (!members_[i]) continue;
        NodeStatus s = members_[i]->node->status();
        if (s.role == Role::kLeader) index = i;
        if (leader == kNoNode) leader = s.leader;
        agree = agree && s.leader == leader && s.leader != kNoNode;
      }
      if (agree && index >= 0) return index;
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }

  CommandResult propose(int i, std::string cmd) {
    std::promise<CommandResult> p;
    auto f = p.get_future();
    members_[i]->node->propose(std::move(cmd), [&p](CommandResult r) { p.set_value(std::move(r)); });
    return f.get();
  }
  CommandResult read(int i) {
    std::promise<CommandResult> p;
    auto f = p.get_future();
    members_[i]->node->read_index([&p](CommandResult r) { p.set_value(std::move(r)); });
    return f.get();
  }
  bool wait_items(int i, size_t n, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (members_[i]->sm.items().size() >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::filesystem::path root_;
  PosixFileSystem fs_;
  std::shared_ptr<LoopbackNetwork> net_;
  std::vector<std::unique_ptr<Member>> members_;
  uint64_t snapshot_entries_ = 10'000;
  uint64_t max_pending_bytes_ = 64ull << 20;
  bool async_snapshots_ = false;
};

TEST_F(NodeCluster, ProposalsOnLeaderAndFollowerApplyEverywhereInOneOrder) {
  const int leader = wait_leader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  for (int k = 0; k < 20; ++k) {
    CommandResult r = propose(k % 2 ? follower : leader, "cmd" + std::to_string(k));
    ASSERT_TRUE(r.ok()) << to_string(r.error);
    // The result is the state machine's own, for this very command.
    EXPECT_EQ(r.value, std::to_string(r.index.value) + ":cmd" + std::to_string(k));
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wait_items(i, 20));
  EXPECT_EQ(members_[0]->sm.items(), members_[1]->sm.items());
  EXPECT_EQ(members_[1]->sm.items(), members_[2]->sm.items());
}

TEST_F(NodeCluster, ReadIndexOnFollowerSeesEveryAcknowledgedWrite) {
  const int leader = wait_leader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 2) % 3;
  for (int k = 0; k < 10; ++k) {
    ASSERT_TRUE(propose(leader, std::string("w").append(std::to_string(k))).ok());
    CommandResult r = read(follower);
    ASSERT_TRUE(r.ok()) << to_string(r.error);
    // After the read barrier the follower's state machine holds the acknowledged write.
    auto items = members_[follower]->sm.items();
    ASSERT_FALSE(items.empty());
    EXPECT_EQ(items.back(), "w" + std::to_string(k));
  }
}

TEST_F(NodeCluster, IsolatedLeaderIsReplacedAndNothingAcknowledgedIsLost) {
  int leader = wait_leader();
  ASSERT_GE(leader, 0);
  std::vector<std::string> acked;
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(propose(leader, "a" + std::to_string(k)).ok());
    acked.push_back("a" + std::to_string(k));
  }
  net_->isolate(NodeId{static_cast<uint64_t>(leader + 1)});
  // The old leader cannot commit: its proposal fails (times out or is overwritten).
  std::promise<CommandResult> lost;
  members_[leader]->node->propose("orphan", [&](CommandResult r) { lost.set_value(r); });
  int next = -1;
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (next < 0 && std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 3; ++i)
      if (i != leader && members_[i]->node->status().role == Role::kLeader) next = i;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(next, 0) << "no new leader on the majority side";
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(propose(next, "b" + std::to_string(k)).ok());
    acked.push_back("b" + std::to_string(k));
  }
  net_->heal_all();
  CommandResult orphan = lost.get_future().get();
  EXPECT_FALSE(orphan.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wait_items(i, acked.size()));
  for (int i = 0; i < 3; ++i) {
    auto items = members_[i]->sm.items();
    for (auto& a : acked) EXPECT_NE(std::find(items.begin(), items.end(), a), items.end()) << a;
    EXPECT_EQ(std::find(items.begin(), items.end(), "orphan"), items.end());
  }
}

class NodeClusterSnapshots : public NodeCluster, public ::testing::WithParamInterface<bool> {};

TEST_P(NodeClusterSnapshots, RestartedMemberRecoversFromItsDiskAndCatchesUpBySnapshot) {
  snapshot_entries_ = 20;
  async_snapshots_ = GetParam();
  TearDown();
  SetUp();
  int leader = wait_leader();
  ASSERT_GE(leader, 0);
  const int victim = (leader + 1) % 3;
  ASSERT_TRUE(propose(leader, "before").ok());
  ASSERT_TRUE(wait_items(victim, 1));
  kill(victim);
  // Enough writes that the survivors snapshot and compact past what the victim holds.
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(propose(leader, std::string("x").append(std::to_string(k))).ok());
  // An image written in the background is recorded a moment after the entries apply.
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (members_[leader]->node->metrics().snapshots_saved.load() < 4 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(5ms);
  EXPECT_GE(members_[leader]->node->metrics().snapshots_saved.load(), 4u);
  EXPECT_GT(members_[leader]->node->status().first_index.value, 2u);  // compacted
  start(victim);
  ASSERT_TRUE(wait_items(victim, 101, 10s));
  EXPECT_EQ(members_[victim]->sm.items(), members_[leader]->sm.items());
  EXPECT_GT(members_[victim]->node->metrics().snapshots_restored.load(), 0u);
  // Restarting the leader from its own disk: snapshot + the log after it give the same state.
  const auto items = members_[leader]->sm.items();
  kill(leader);
  start(leader);
  ASSERT_TRUE(wait_items(leader, items.size(), 10s));
  EXPECT_EQ(members_[leader]->sm.items(), items);
}
INSTANTIATE_TEST_SUITE_P(SyncAndBackground, NodeClusterSnapshots, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "BackgroundImage" : "LoopThreadImage"; });

TEST_F(NodeCluster, OversizedProposalIsRefusedWithAClearError) {
  ASSERT_GE(wait_leader(), 0);
  CommandResult r = propose(0, std::string(3 << 20, 'x'));
  EXPECT_EQ(r.error, NodeError::kTooLarge);
}

TEST_F(NodeCluster, MetricsMeasureRoundTripsAndProposals) {
  const int l = wait_leader();
  ASSERT_GE(l, 0);
  const int f = (l + 1) % 3;
  for (int k = 0; k < 20; ++k) ASSERT_TRUE(propose(l, std::string("m").append(std::to_string(k))).ok());
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(propose(f, "f" + std::to_string(k)).ok());
  const NodeMetrics& lm = members_[l]->node->metrics();
  // Each successful proposal is one sample on the member that took it.
  EXPECT_EQ(lm.proposal_seconds.count(), 20u);
  EXPECT_EQ(members_[f]->node->metrics().proposal_seconds.count(), 5u);
  // The leader measured append round trips to its followers; someone measured votes.
  EXPECT_GT(lm.append_rtt_seconds.count(), 0u);
  uint64_t votes = 0;
  for (auto& m : members_) votes += m->node->metrics().vote_rtt_seconds.count();
  EXPECT_GT(votes, 0u);
  const std::string text = lm.render_prometheus();
  for (const char* name : {"balsa_raft_append_rtt_seconds_bucket{le=\"0.0001\"}", "balsa_raft_vote_rtt_seconds_count",
                           "balsa_proposal_duration_seconds_count 20", "etcd_disk_wal_fsync_duration_seconds_bucket"})
    EXPECT_NE(text.find(name), std::string::npos) << name;
}

TEST_F(NodeCluster, PendingBytesAreBoundedAndReleased) {
  max_pending_bytes_ = 8192;
  for (int i = 0; i < 3; ++i) {
    kill(i);
    start(i);
  }
  const int l = wait_leader();
  ASSERT_GE(l, 0);
  // A burst far over the bound: what does not fit is refused at once; what fits applies.
  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 0, max_outstanding = 0, ok = 0, dropped = 0, other = 0, finished = 0;
  constexpr int kBurst = 200;
  for (int k = 0; k < kBurst; ++k) {
    {
      std::lock_guard lk(mu);
      outstanding++;
      max_outstanding = std::max(max_outstanding, outstanding);
    }
    members_[l]->node->propose(std::string(1000, static_cast<char>('a' + k % 26)), [&](CommandResult r) {
      std::lock_guard lk(mu);
      outstanding--;
      finished++;
      (r.ok() ? ok : r.error == NodeError::kDropped ? dropped : other)++;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return finished == kBurst; }));
  }
  EXPECT_EQ(other, 0);
  EXPECT_GT(dropped, 0);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(ok + dropped, kBurst);
  // Counted before each call, so the count includes the one being refused: bound + 1.
  EXPECT_LE(max_outstanding, 8192 / 1001 + 1);
  EXPECT_TRUE(wait_items(l, static_cast<size_t>(ok)));
  // Everything finished, so the budget is whole again.
  for (int k = 0; k < 5; ++k) EXPECT_TRUE(propose(l, std::string(1000, 'z')).ok());
}

}  // namespace
}  // namespace balsa
