#include "transport/loopback_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace balsa {
namespace {

using namespace std::chrono_literals;

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

Message msg(uint64_t from, uint64_t to, uint64_t seq) {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(seq);
  return m;
}

struct Sink {
  std::mutex mu;
  std::vector<Message> got;
  Transport::Handler handler() {
    return [this](Message m) {
      std::lock_guard lk(mu);
      got.push_back(std::move(m));
    };
  }
  size_t size() {
    std::lock_guard lk(mu);
    return got.size();
  }
};

TEST(LoopbackTransport, DeliversInOrderBothWays) {
  auto net = std::make_shared<LoopbackNetwork>();
  LoopbackTransport a(net, NodeId(1)), b(net, NodeId(2));
  Sink sa, sb;
  a.add_peer(NodeId(2), "");
  b.add_peer(NodeId(1), "");
  a.start(sa.handler());
  b.start(sb.handler());
  for (uint64_t i = 1; i <= 1000; ++i) {
    a.send({msg(1, 2, i)});
    b.send({msg(2, 1, i)});
  }
  ASSERT_TRUE(wait_until([&] { return sa.size() == 1000 && sb.size() == 1000; }));
  for (uint64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(sb.got[i].term, Term(i + 1));
    EXPECT_EQ(sa.got[i].term, Term(i + 1));
  }
}

TEST(LoopbackTransport, CutLinksAndUnknownPeersDrop) {
  auto net = std::make_shared<LoopbackNetwork>();
  LoopbackTransport a(net, NodeId(1)), b(net, NodeId(2));
  Sink sb;
  a.add_peer(NodeId(2), "");
  a.start([](Message) {});
  b.start(sb.handler());
  net->cut(NodeId(1), NodeId(2));
  a.send({msg(1, 2, 1), msg(1, 3, 1)});
  EXPECT_EQ(net->dropped(), 1u);
  EXPECT_EQ(a.unknown_peer_dropped(), 1u);
  net->heal_all();
  a.send({msg(1, 2, 2)});
  ASSERT_TRUE(wait_until([&] { return sb.size() == 1; }));
  EXPECT_EQ(sb.got[0].term, Term(2));

  auto s = a.stats();
  ASSERT_EQ(s.peers.size(), 1u);
  EXPECT_EQ(s.peers[0].id, NodeId(2));
  EXPECT_EQ(s.peers[0].messages_sent, 1u);
  EXPECT_EQ(s.peers[0].dropped_send_failed, 1u);
  EXPECT_EQ(s.dropped_unknown_peer, 1u);
  ASSERT_TRUE(wait_until([&] { return b.stats().messages_received == 1; }));
}

TEST(LoopbackTransport, NoCallbackAfterStop) {
  auto net = std::make_shared<LoopbackNetwork>();
  LoopbackTransport a(net, NodeId(1));
  auto b = std::make_unique<LoopbackTransport>(net, NodeId(2));
  std::atomic<bool> stopped{false};
  std::atomic<int> late{0};
  a.add_peer(NodeId(2), "");
  a.start([](Message) {});
  b->start([&](Message) {
    if (stopped.load()) late.fetch_add(1);
    std::this_thread::sleep_for(10us);
  });
  std::thread spam([&] {
    for (uint64_t i = 0; i < 20000; ++i) a.send({msg(1, 2, i)});
  });
  std::this_thread::sleep_for(5ms);
  b->stop();
  stopped = true;
  b->stop();  // idempotent
  spam.join();
  EXPECT_EQ(late.load(), 0);
}

}  // namespace
}  // namespace balsa
