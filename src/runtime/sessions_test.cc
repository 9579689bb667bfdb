// Exactly-once sessions: the wrapper's rules one by one, its snapshot, and retries through a
// real three-node cluster across a leader kill and timeouts.
#include "runtime/sessions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "core/codec.h"
#include "storage/fs.h"
#include "transport/loopback_transport.h"

namespace balsa {
namespace {

using namespace std::chrono_literals;

// Records every applied command; its result is "<count of commands so far>".
class Recorder final : public StateMachine {
 public:
  void apply(std::span<const Entry> entries, std::vector<std::string>* results) override {
    std::lock_guard lk(mu_);
    for (const Entry& e : entries) {
      EXPECT_GT(e.index, applied_);  // every index, in order
      applied_ = e.index;
      if (!e.data.empty()) applied_cmds_.push_back(e.data);
      results->push_back(std::to_string(applied_cmds_.size()));
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
    w.u64(applied_cmds_.size());
    for (auto& c : applied_cmds_) w.bytes(c);
    out.write(w.out());
  }
  void restore_snapshot(ByteSource& in, LogIndex index) override {
    std::string all;
    char buf[4096];
    while (size_t n = in.read(buf, sizeof buf)) all.append(buf, n);
    codec::Reader r(all);
    uint64_t applied = 0, count = 0;
    ASSERT_TRUE(r.u64(&applied) && r.u64(&count));
    std::vector<std::string> cmds(count);
    for (auto& c : cmds) ASSERT_TRUE(r.bytes(&c));
    std::lock_guard lk(mu_);
    EXPECT_EQ(applied, index.value);
    applied_ = index;
    applied_cmds_ = std::move(cmds);
  }
  std::vector<std::string> commands() const {
    std::lock_guard lk(mu_);
    return applied_cmds_;
  }

 private:
  mutable std::mutex mu_;
  LogIndex applied_;
  std::vector<std::string> applied_cmds_;
};

// Applies payloads to `sm` at consecutive indexes; returns the decoded replies.
struct Driver {
  SessionStateMachine& sm;
  uint64_t next = 1;
  std::vector<SessionStateMachine::Reply> apply(const std::vector<std::string>& payloads) {
    std::vector<Entry> es;
    for (const auto& p : payloads) es.push_back(Entry{Term{1}, LogIndex{next++}, EntryType::kNormal, p});
    std::vector<std::string> results;
    sm.apply(es, &results);
    EXPECT_EQ(results.size(), es.size());
    std::vector<SessionStateMachine::Reply> out;
    for (auto& r : results) out.push_back(SessionStateMachine::decode_reply(r));
    return out;
  }
  uint64_t register_session() {
    auto r = apply({SessionStateMachine::register_command()});
    EXPECT_EQ(r[0].status, SessionStatus::kOk);
    codec::Reader rd(r[0].result);
    uint64_t id = 0;
    EXPECT_TRUE(rd.u64(&id));
    return id;
  }
};

TEST(Sessions, RetryOfTheLastCommandIsAnsweredFromMemory) {
  Recorder inner;
  SessionStateMachine sm(inner);
  Driver d{sm};
  const uint64_t s = d.register_session();
  EXPECT_EQ(s, 1u);  // the registration's index
  auto r = d.apply({SessionStateMachine::command(s, 1, "a")});
  EXPECT_EQ(r[0].status, SessionStatus::kOk);
  EXPECT_EQ(r[0].result, "1");
  r = d.apply({SessionStateMachine::command(s, 1, "a")});  // the reply was lost: retry
  EXPECT_EQ(r[0].status, SessionStatus::kOk);
  EXPECT_EQ(r[0].result, "1");
  EXPECT_EQ(inner.commands(), std::vector<std::string>{"a"});
  EXPECT_EQ(inner.applied_index(), LogIndex{3});  // the inner machine saw every index
  EXPECT_EQ(sm.duplicates(), 1u);
  r = d.apply({SessionStateMachine::command(s, 2, "b")});
  EXPECT_EQ(r[0].result, "2");
  r = d.apply({SessionStateMachine::command(s, 1, "a")});  // older than the last: stale
  EXPECT_EQ(r[0].status, SessionStatus::kStale);
  EXPECT_EQ(inner.commands(), (std::vector<std::string>{"a", "b"}));
}

TEST(Sessions, RetryInTheSameBatchAppliesOnce) {
  Recorder inner;
  SessionStateMachine sm(inner);
  Driver d{sm};
  const uint64_t s = d.register_session();
  auto r = d.apply({SessionStateMachine::command(s, 1, "x"), SessionStateMachine::command(s, 1, "x"),
                    SessionStateMachine::command(s, 2, "y"), SessionStateMachine::command(s, 2, "y")});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].result, "1");
  EXPECT_EQ(r[1].result, "1");
  EXPECT_EQ(r[2].result, "2");
  EXPECT_EQ(r[3].result, "2");
  EXPECT_EQ(inner.commands(), (std::vector<std::string>{"x", "y"}));
}

TEST(Sessions, BadCommandsAreRefusedAndNotApplied) {
  Recorder inner;
  SessionStateMachine sm(inner);
  Driver d{sm};
  const uint64_t s = d.register_session();
  auto r = d.apply({"plain command", SessionStateMachine::command(s + 100, 1, "z"),
                    SessionStateMachine::command(s, 0, "zero"), std::string("\xB5" "C", 2)});
  EXPECT_EQ(r[0].status, SessionStatus::kMalformed);
  EXPECT_EQ(r[1].status, SessionStatus::kSessionExpired);
  EXPECT_EQ(r[2].status, SessionStatus::kMalformed);
  EXPECT_EQ(r[3].status, SessionStatus::kMalformed);
  EXPECT_TRUE(inner.commands().empty());
  EXPECT_EQ(inner.applied_index(), LogIndex{5});
  EXPECT_THROW(SessionStateMachine(inner, SessionOptions{.max_sessions = 0}), std::invalid_argument);
}

TEST(Sessions, TheLeastRecentlyUsedSessionIsEvicted) {
  Recorder inner;
  SessionStateMachine sm(inner, SessionOptions{.max_sessions = 2});
  Driver d{sm};
  const uint64_t a = d.register_session();
  const uint64_t b = d.register_session();
  d.apply({SessionStateMachine::command(a, 1, "a1")});  // a is now more recent than b
  const uint64_t c = d.register_session();              // evicts b
  EXPECT_EQ(sm.session_count(), 2u);
  auto r = d.apply({SessionStateMachine::command(b, 1, "b1"), SessionStateMachine::command(a, 2, "a2"),
                    SessionStateMachine::command(c, 1, "c1")});
  EXPECT_EQ(r[0].status, SessionStatus::kSessionExpired);
  EXPECT_EQ(r[1].status, SessionStatus::kOk);
  EXPECT_EQ(r[2].status, SessionStatus::kOk);
  EXPECT_EQ(inner.commands(), (std::vector<std::string>{"a1", "a2", "c1"}));
}

TEST(Sessions, SessionsSurviveASnapshot) {
  Recorder inner;
  SessionStateMachine sm(inner);
  Driver d{sm};
  const uint64_t s = d.register_session();
  d.apply({SessionStateMachine::command(s, 1, "p"), SessionStateMachine::command(s, 2, "q")});
  StringSink image;
  sm.save_snapshot(image);

  Recorder inner2;
  SessionStateMachine sm2(inner2);
  StringSource src(image.out);
  sm2.restore_snapshot(src, LogIndex{3});
  EXPECT_EQ(sm2.session_count(), 1u);
  Driver d2{sm2, 4};
  auto r = d2.apply({SessionStateMachine::command(s, 2, "q"), SessionStateMachine::command(s, 3, "r")});
  EXPECT_EQ(r[0].result, "2");  // the retry after restore: remembered, not applied
  EXPECT_EQ(r[1].result, "3");
  EXPECT_EQ(inner2.commands(), (std::vector<std::string>{"p", "q", "r"}));

  for (size_t cut : {size_t{0}, size_t{5}, size_t{17}}) {  // a truncated image is refused
    Recorder inner3;
    SessionStateMachine sm3(inner3);
    StringSource truncated(std::string_view(image.out).substr(0, cut));
    EXPECT_THROW(sm3.restore_snapshot(truncated, LogIndex{3}), std::runtime_error) << cut;
  }
  std::string wrong = image.out;
  wrong[0] = 'X';
  StringSource bad(wrong);
  Recorder inner4;
  SessionStateMachine sm4(inner4);
  EXPECT_THROW(sm4.restore_snapshot(bad, LogIndex{3}), std::runtime_error);
}

// Three nodes; a client on a follower keeps calling while the leader is killed. Requests time
// out quickly, so some attempts are retried with their outcome unknown; every call that
// succeeded applied exactly once, and none applied twice.
TEST(SessionsCluster, RetriesAcrossALeaderKillApplyOnce) {
  const auto root = std::filesystem::temp_directory_path() / ("balsa-sessions-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  PosixFileSystem fs;
  auto net = std::make_shared<LoopbackNetwork>();
  struct Member {
    std::unique_ptr<DurableLog> log;
    Recorder inner;
    std::unique_ptr<SessionStateMachine> sm;
    std::unique_ptr<LoopbackTransport> link;
    std::unique_ptr<Node> node;
  };
  std::vector<std::unique_ptr<Member>> m;
  for (uint64_t id = 1; id <= 3; ++id) {
    auto x = std::make_unique<Member>();
    x->log = DurableLog::open(fs, (root / std::to_string(id)).string());
    x->sm = std::make_unique<SessionStateMachine>(x->inner);
    x->link = std::make_unique<LoopbackTransport>(net, NodeId{id});
    for (uint64_t p = 1; p <= 3; ++p)
      if (p != id) x->link->add_peer(NodeId{p}, "");
    NodeOptions o;
    o.id = NodeId{id};
    o.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
    o.tick_interval = 10ms;
    o.request_timeout = 150ms;  // short: forwarded attempts to a dead leader time out and are retried
    o.seed = 500 + id;
    x->node = std::make_unique<Node>(o, *x->log, *x->sm, *x->link);
    x->node->start();
    m.push_back(std::move(x));
  }
  auto leader = [&]() -> int {
    for (int wait = 0; wait < 500; ++wait, std::this_thread::sleep_for(10ms))
      for (int i = 0; i < 3; ++i)
        if (m[i]->node && m[i]->node->status().role == Role::kLeader) return i;
    return -1;
  };
  const int first_leader = leader();
  ASSERT_GE(first_leader, 0);
  const int client_at = (first_leader + 1) % 3;
  SessionClient client(*m[client_at]->node, SessionClient::Options{.deadline = 20s, .retry_backoff = 20ms});

  std::set<std::string> acknowledged;
  int retried_calls = 0;
  std::thread killer;
  for (int k = 0; k < 60; ++k) {
    if (k == 20) {  // kill the leader while the next calls are in flight to it
      killer = std::thread([&, first_leader] { std::this_thread::sleep_for(5ms); m[first_leader]->node->stop(); });
    }
    const std::string cmd = "cmd-" + std::to_string(k);
    SessionClient::Result r = client.call(cmd);
    ASSERT_TRUE(r.ok()) << k << ": " << to_string(r.error) << " / " << to_string(r.status);
    if (r.attempts > 1) ++retried_calls;
    acknowledged.insert(cmd);
    if (k % 10 == 5) {  // a lost reply: the same attempt again must be answered, not re-applied
      SessionClient::Result again = client.propose_raw(client.last_seq(), cmd);
      ASSERT_TRUE(again.ok()) << k << ": " << to_string(again.error) << " / " << to_string(again.status);
      EXPECT_EQ(again.value, r.value);
    }
  }
  killer.join();
  // Wait for the live members to apply everything, then compare their histories.
  std::vector<std::string> cmds;
  for (int wait = 0; wait < 500; ++wait, std::this_thread::sleep_for(10ms)) {
    cmds = m[client_at]->inner.commands();
    if (cmds.size() >= acknowledged.size()) break;
  }
  std::multiset<std::string> applied(cmds.begin(), cmds.end());
  for (const auto& c : applied) EXPECT_EQ(applied.count(c), 1u) << c << " applied twice";
  for (const auto& c : acknowledged) EXPECT_EQ(applied.count(c), 1u) << c << " acknowledged, not applied";
  EXPECT_EQ(cmds.size(), acknowledged.size());
  std::printf("60 calls, %d needed more than one attempt, %llu retries answered from memory\n", retried_calls,
              static_cast<unsigned long long>(m[client_at]->sm->duplicates()));
  EXPECT_GE(m[client_at]->sm->duplicates(), 1u);  // the replayed attempts were seen and answered
  for (auto& x : m)
    if (x->node) x->node->stop();
  m.clear();
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace balsa
