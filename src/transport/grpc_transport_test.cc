#include "transport/grpc_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/codec.h"
#include "transport/peer.grpc.pb.h"

namespace balsa {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kCluster = 0xba15a;

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A port below 32768 that binds right now. Below the kernel's ephemeral range (32768-60999),
// so no outgoing connection can take it before the test's server binds it (a port the kernel
// handed out and the test closed again could be); random, so concurrent runs rarely pick the
// same one, and a clash fails loudly (the server disables SO_REUSEPORT).
int free_port() {
  static std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = std::uniform_int_distribution<int>(20000, 32767)(rng);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return port;
  }
  ADD_FAILURE() << "no free port below 32768";
  return 0;
}

std::string local(int port) { return "127.0.0.1:" + std::to_string(port); }

Message msg(uint64_t from, uint64_t to, uint64_t seq, size_t payload = 0) {
  Message m;
  m.type = MessageType::kApp;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(seq);
  if (payload > 0) m.entries.push_back(Entry{Term(1), LogIndex(seq), EntryType::kNormal, std::string(payload, 'x')});
  return m;
}

// Records what one node receives.
struct Sink {
  std::mutex mu;
  std::map<NodeId, std::vector<Message>> by_sender;
  size_t total = 0;

  Transport::Handler handler() {
    return [this](Message m) {
      std::lock_guard lk(mu);
      ++total;
      by_sender[m.from].push_back(std::move(m));
    };
  }
  size_t count() {
    std::lock_guard lk(mu);
    return total;
  }
  size_t count_from(uint64_t id) {
    std::lock_guard lk(mu);
    return by_sender[NodeId(id)].size();
  }
  // True if the terms from `id` are strictly increasing (send order kept, nothing duplicated).
  bool in_order_from(uint64_t id) {
    std::lock_guard lk(mu);
    uint64_t prev = 0;
    for (const auto& m : by_sender[NodeId(id)]) {
      if (m.term.value <= prev) return false;
      prev = m.term.value;
    }
    return true;
  }
};

struct Node {
  Sink sink;
  std::unique_ptr<GrpcTransport> t;

  explicit Node(uint64_t id, GrpcTransportOptions o = {}, int port = 0) {
    o.self = NodeId(id);
    if (o.cluster_id == 0) o.cluster_id = kCluster;
    o.listen_address = local(port);
    o.seed = id;
    t = std::make_unique<GrpcTransport>(o);
  }
  void start() { t->start(sink.handler()); }
  std::string address() const { return local(t->listen_port()); }
  PeerLinkStats peer(uint64_t id) const {
    for (const auto& p : t->stats().peers) {
      if (p.id == NodeId(id)) return p;
    }
    return {};
  }
};

class GrpcTransportTest : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }
};

TEST_F(GrpcTransportTest, TwoNodesExchangeManyMessagesBothWaysInOrderAndBatched) {
  Node a(1), b(2);
  a.start();
  b.start();
  a.t->add_peer(NodeId(2), b.address());
  b.t->add_peer(NodeId(1), a.address());
  constexpr uint64_t kN = 20000;
  std::thread ta([&] {
    for (uint64_t i = 1; i <= kN; i += 50) {
      std::vector<Message> v;
      for (uint64_t j = i; j < i + 50; ++j) v.push_back(msg(1, 2, j, j % 7 == 0 ? 200 : 0));
      a.t->send(std::move(v));
      while (a.peer(2).queued_messages > 2000) std::this_thread::sleep_for(1ms);
    }
  });
  for (uint64_t i = 1; i <= kN; ++i) {
    b.t->send({msg(2, 1, i)});
    if (i % 1000 == 0) {
      while (b.peer(1).queued_messages > 2000) std::this_thread::sleep_for(1ms);
    }
  }
  ta.join();
  ASSERT_TRUE(wait_until([&] { return a.sink.count() == kN && b.sink.count() == kN; }))
      << a.sink.count() << " " << b.sink.count();
  EXPECT_TRUE(a.sink.in_order_from(2));
  EXPECT_TRUE(b.sink.in_order_from(1));
  // The sender counts a batch after its Write returns, which may be after the receiver saw it.
  EXPECT_TRUE(wait_until([&] { return a.peer(2).messages_sent == kN; }));
  auto pa = a.peer(2);
  EXPECT_EQ(pa.dropped_queue_full, 0u);
  EXPECT_LT(pa.batches_sent, kN) << "no batching observed";
  EXPECT_LT(b.peer(1).batches_sent, kN);
  EXPECT_EQ(pa.connects, 1u);
  auto sb = b.t->stats();
  EXPECT_EQ(sb.messages_received, kN);
  EXPECT_EQ(sb.received_from.at(NodeId(1)), kN);
  EXPECT_EQ(sb.decode_errors, 0u);
}

TEST_F(GrpcTransportTest, ThreeNodesAllPairs) {
  Node n1(1), n2(2), n3(3);
  std::vector<Node*> nodes{&n1, &n2, &n3};
  for (auto* n : nodes) n->start();
  for (uint64_t i = 0; i < 3; ++i) {
    for (uint64_t j = 0; j < 3; ++j) {
      if (i != j) nodes[i]->t->add_peer(NodeId(j + 1), nodes[j]->address());
    }
  }
  constexpr uint64_t kN = 3000;
  std::vector<std::thread> senders;
  for (uint64_t i = 0; i < 3; ++i) {
    senders.emplace_back([&, i] {
      for (uint64_t s = 1; s <= kN; ++s) {
        std::vector<Message> v;
        for (uint64_t j = 0; j < 3; ++j) {
          if (i != j) v.push_back(msg(i + 1, j + 1, s));
        }
        nodes[i]->t->send(std::move(v));
        if (s % 500 == 0) std::this_thread::sleep_for(1ms);
      }
    });
  }
  for (auto& t : senders) t.join();
  ASSERT_TRUE(wait_until([&] {
    return n1.sink.count() == 2 * kN && n2.sink.count() == 2 * kN && n3.sink.count() == 2 * kN;
  }));
  for (uint64_t i = 0; i < 3; ++i) {
    for (uint64_t j = 1; j <= 3; ++j) {
      if (j != i + 1) {
        EXPECT_EQ(nodes[i]->sink.count_from(j), kN);
        EXPECT_TRUE(nodes[i]->sink.in_order_from(j));
      }
    }
  }
}

TEST_F(GrpcTransportTest, WrongClusterIsRefusedAndCountedWhileGoodPeerIsServed) {
  Node a(1), good(2);
  GrpcTransportOptions other;
  other.cluster_id = 0xbad;
  Node stranger(3, other);
  a.start();
  good.start();
  stranger.start();
  good.t->add_peer(NodeId(1), a.address());
  stranger.t->add_peer(NodeId(1), a.address());

  for (uint64_t i = 1; i <= 20; ++i) {
    stranger.t->send({msg(3, 1, i)});
    good.t->send({msg(2, 1, i)});
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(wait_until([&] { return a.sink.count_from(2) == 20; }));
  ASSERT_TRUE(wait_until([&] { return a.t->stats().refused_cluster_id >= 1; }));
  ASSERT_TRUE(wait_until([&] {
    stranger.t->send({msg(3, 1, 100)});
    return stranger.peer(1).streams_refused >= 1;
  }));
  EXPECT_EQ(a.sink.count_from(3), 0u);
  // Still serving the good peer afterwards.
  good.t->send({msg(2, 1, 21)});
  ASSERT_TRUE(wait_until([&] { return a.sink.count_from(2) == 21; }));
}

// A raw client, to send what a well-behaved transport never would.
struct RawClient {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<transport::RaftPeer::Stub> stub;
  explicit RawClient(const std::string& addr)
      : channel(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials())),
        stub(transport::RaftPeer::NewStub(channel)) {}

  grpc::Status send(const std::vector<transport::Batch>& batches) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    transport::StreamSummary summary;
    auto w = stub->Stream(&ctx, &summary);
    for (const auto& b : batches) {
      if (!w->Write(b)) break;
    }
    w->WritesDone();
    return w->Finish();
  }
};

transport::Batch raw_batch(uint64_t from, std::vector<std::string> msgs, uint64_t cluster = kCluster) {
  transport::Batch b;
  b.set_cluster_id(cluster);
  b.set_from(from);
  for (auto& m : msgs) b.add_messages(std::move(m));
  return b;
}

TEST_F(GrpcTransportTest, GarbageIsDisconnectedAndCountedAndTheNodeKeepsServing) {
  Node a(1), good(2);
  a.start();
  good.start();
  good.t->add_peer(NodeId(1), a.address());
  RawClient raw(a.address());

  // Valid first message, then garbage: the first is delivered, the stream is closed.
  auto st = raw.send({raw_batch(9, {codec::encode(msg(9, 1, 1)), std::string("\xff\xff\xff\x01garbage", 11)})});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_EQ(a.t->stats().decode_errors, 1u);
  EXPECT_EQ(a.sink.count_from(9), 1u);

  // Truncated valid encoding.
  std::string enc = codec::encode(msg(9, 1, 2, 100));
  st = raw.send({raw_batch(9, {enc.substr(0, enc.size() / 2)})});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(a.t->stats().decode_errors, 2u);

  // Message claiming another sender than the stream, and a message addressed elsewhere.
  st = raw.send({raw_batch(9, {codec::encode(msg(8, 1, 3))})});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  st = raw.send({raw_batch(9, {codec::encode(msg(9, 5, 3))})});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(a.t->stats().refused_identity, 2u);

  // Chunk out of place, and a chunk announcing more than max_message_bytes.
  transport::Batch c = raw_batch(9, {});
  c.set_chunk("abc");
  c.set_chunk_offset(5);
  c.set_total_size(10);
  st = raw.send({c});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  c.set_chunk_offset(0);
  c.set_total_size(uint64_t{1} << 40);
  st = raw.send({c});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(a.t->stats().decode_errors, 4u);

  // Wrong cluster from a raw client: FAILED_PRECONDITION.
  st = raw.send({raw_batch(9, {codec::encode(msg(9, 1, 4))}, 77)});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(a.t->stats().refused_cluster_id, 1u);

  // Bytes that are not even a protobuf Batch: refused and counted the same way.
  {
    grpc::GenericStub generic(raw.channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    grpc::CompletionQueue cq;
    auto call = generic.PrepareCall(&ctx, "/balsa.transport.RaftPeer/Stream", &cq);
    void* tag;
    bool ok;
    auto step = [&](uintptr_t want) {
      ASSERT_TRUE(cq.Next(&tag, &ok));
      EXPECT_EQ(reinterpret_cast<uintptr_t>(tag), want);
    };
    call->StartCall(reinterpret_cast<void*>(1));
    step(1);
    grpc::Slice s(std::string("\x0a\xff\xff\xff\xff\xff\xff", 7));
    grpc::ByteBuffer bb(&s, 1);
    call->Write(bb, reinterpret_cast<void*>(2));
    step(2);
    grpc::ByteBuffer reply;
    call->Read(&reply, reinterpret_cast<void*>(3));
    step(3);
    EXPECT_FALSE(ok);
    grpc::Status gst;
    call->Finish(&gst, reinterpret_cast<void*>(4));
    step(4);
    EXPECT_EQ(gst.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << gst.error_message();
    EXPECT_EQ(a.t->stats().decode_errors, 5u);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }

  // The node keeps serving a well-behaved peer.
  for (uint64_t i = 1; i <= 100; ++i) good.t->send({msg(2, 1, i)});
  ASSERT_TRUE(wait_until([&] { return a.sink.count_from(2) == 100; }));
  EXPECT_TRUE(a.sink.in_order_from(2));
}

TEST_F(GrpcTransportTest, ANewerStreamFromTheSameSenderSupersedesTheOlder) {
  Node a(1);
  a.start();
  RawClient raw(a.address());
  auto open = [&](grpc::ClientContext* ctx, transport::StreamSummary* sum) {
    return raw.stub->Stream(ctx, sum);
  };
  grpc::ClientContext ctx_old, ctx_new;
  transport::StreamSummary sum_old, sum_new;
  auto old_stream = open(&ctx_old, &sum_old);
  auto new_stream = open(&ctx_new, &sum_new);
  ASSERT_TRUE(old_stream->Write(raw_batch(9, {codec::encode(msg(9, 1, 1))})));
  ASSERT_TRUE(wait_until([&] { return a.sink.count_from(9) == 1; }));
  ASSERT_TRUE(new_stream->Write(raw_batch(9, {codec::encode(msg(9, 1, 2))})));
  ASSERT_TRUE(wait_until([&] { return a.sink.count_from(9) == 2; }));
  old_stream->Write(raw_batch(9, {codec::encode(msg(9, 1, 3))}));  // late batch on the old stream
  old_stream->WritesDone();
  EXPECT_EQ(old_stream->Finish().error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(a.t->stats().streams_superseded, 1u);
  ASSERT_TRUE(new_stream->Write(raw_batch(9, {codec::encode(msg(9, 1, 4))})));
  new_stream->WritesDone();
  EXPECT_TRUE(new_stream->Finish().ok());
  EXPECT_EQ(sum_new.messages_received(), 2u);
  EXPECT_EQ(a.sink.count_from(9), 3u);
  EXPECT_TRUE(a.sink.in_order_from(9));
}

TEST_F(GrpcTransportTest, AThrowingHandlerEndsTheStreamAndTheSenderReconnects) {
  Node a(1), b(2);
  std::atomic<int> got{0};
  a.start();
  b.t->start([&](Message m) {
    if (m.term == Term(5)) throw std::runtime_error("boom");
    got.fetch_add(1);
  });
  a.t->add_peer(NodeId(2), b.address());
  for (uint64_t i = 1; i <= 5; ++i) a.t->send({msg(1, 2, i)});
  ASSERT_TRUE(wait_until([&] { return got == 4; }));
  uint64_t seq = 100;
  ASSERT_TRUE(wait_until([&] {
    a.t->send({msg(1, 2, ++seq)});
    std::this_thread::sleep_for(5ms);
    return got > 4;
  }));
  EXPECT_GE(a.peer(2).connects, 2u);
}

TEST_F(GrpcTransportTest, ReconnectsWithBackoffWhenThePeerStartsLater) {
  const int port = free_port();
  Node a(1);
  a.t->add_peer(NodeId(2), local(port));  // before start: the writer starts with start()
  a.start();
  ASSERT_TRUE(wait_until([&] { return a.peer(2).connect_failures >= 3; }));
  EXPECT_FALSE(a.peer(2).connected);
  // Backoff: 50 ms doubling to 2 s. Without it a refused loopback connect retries in ~100 us.
  auto f0 = a.peer(2).connect_failures;
  std::this_thread::sleep_for(500ms);
  EXPECT_LE(a.peer(2).connect_failures - f0, 6u);

  for (uint64_t i = 1; i <= 10; ++i) a.t->send({msg(1, 2, i)});  // queued while down
  Node b(2, {}, port);
  b.start();
  ASSERT_TRUE(wait_until([&] { return a.peer(2).connected; }));
  for (uint64_t i = 11; i <= 20; ++i) a.t->send({msg(1, 2, i)});
  ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) == 20; }));
  EXPECT_TRUE(b.sink.in_order_from(1));

  // The peer goes away and comes back on the same port: the link is re-established.
  b.t->stop();
  Node b2(2, {}, port);
  b2.start();
  uint64_t seq = 100;
  ASSERT_TRUE(wait_until([&] {
    a.t->send({msg(1, 2, ++seq)});
    std::this_thread::sleep_for(5ms);
    return b2.sink.count_from(1) > 0;
  }));
  EXPECT_TRUE(b2.sink.in_order_from(1));
  EXPECT_GE(a.peer(2).connects, 2u);
}

TEST_F(GrpcTransportTest, AnIdleLinkNoticesThePeerRestartAndTheFirstMessageAfterArrives) {
  const int port = free_port();
  Node a(1);
  a.start();
  a.t->add_peer(NodeId(2), local(port));
  {
    Node b(2, {}, port);
    b.start();
    a.t->send({msg(1, 2, 1)});
    ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) == 1; }));
  }  // b stops while the link is idle
  ASSERT_TRUE(wait_until([&] { return !a.peer(2).connected; }));
  Node b2(2, {}, port);
  b2.start();
  ASSERT_TRUE(wait_until([&] { return a.peer(2).connected; }));
  a.t->send({msg(1, 2, 2)});  // one message, no retries: it must not be lost
  ASSERT_TRUE(wait_until([&] { return b2.sink.count_from(1) == 1; }));
  EXPECT_EQ(a.peer(2).dropped_send_failed, 0u);
}

TEST_F(GrpcTransportTest, ConcurrentSendsPeerChangesAndStop) {
  Node b(2), c(3);
  b.start();
  c.start();
  auto a = std::make_unique<Node>(1);
  a->start();
  std::atomic<bool> done{false};
  std::vector<std::thread> senders;
  for (int t = 0; t < 2; ++t) {
    senders.emplace_back([&] {
      uint64_t i = 0;
      while (!done) {
        a->t->send({msg(1, 2, ++i), msg(1, 3, i), msg(1, 4, i)});
        (void)a->t->stats();
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    a->t->add_peer(NodeId(2), b.address());
    a->t->add_peer(NodeId(3), round % 2 ? c.address() : b.address());  // re-address
    std::this_thread::sleep_for(2ms);
    a->t->remove_peer(NodeId(2));
  }
  a->t->add_peer(NodeId(2), b.address());
  ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) > 0; }));
  auto t0 = Clock::now();
  a->t->stop();
  EXPECT_LT(Clock::now() - t0, 1s);
  done = true;
  for (auto& t : senders) t.join();
  a.reset();
  // Node 3 was at times pointed at b's address: b refuses those streams (refused_identity) and
  // hands its handler only messages addressed to node 2.
  std::lock_guard lk(b.sink.mu);
  for (const auto& m : b.sink.by_sender[NodeId(1)]) EXPECT_EQ(m.to, NodeId(2));
  EXPECT_TRUE(b.sink.by_sender.size() == 1);
}

TEST_F(GrpcTransportTest, FullQueueDropsAndCountsWithoutBlocking) {
  GrpcTransportOptions o;
  o.max_queue_messages = 100;
  Node a(1, o);
  a.t->add_peer(NodeId(2), local(free_port()));  // nobody listens
  a.start();
  std::vector<Message> v;
  for (uint64_t i = 1; i <= 10000; ++i) v.push_back(msg(1, 2, i, 100));
  auto t0 = Clock::now();
  a.t->send(std::move(v));
  EXPECT_LT(Clock::now() - t0, 500ms);
  auto p = a.peer(2);
  EXPECT_EQ(p.queued_messages, 100u);
  EXPECT_EQ(p.dropped_queue_full, 9900u);
  a.t->send({msg(1, 7, 1)});
  EXPECT_EQ(a.t->stats().dropped_unknown_peer, 1u);
}

// Collects DeliveryFeedback calls.
struct FeedbackLog {
  std::atomic<int> unreachable{0}, snap_ok{0}, snap_lost{0};
  DeliveryFeedback feedback() {
    return DeliveryFeedback{[this](NodeId) { unreachable.fetch_add(1); },
                            [this](NodeId, bool ok) { (ok ? snap_ok : snap_lost).fetch_add(1); }};
  }
};

Message small_snap(uint64_t from, uint64_t to) {
  Message m;
  m.type = MessageType::kSnap;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(1);
  m.snapshot.metadata.index = LogIndex(10);
  m.snapshot.data = "image";
  return m;
}

TEST_F(GrpcTransportTest, FeedbackReportsUnreachablePeersAndLostSnapshots) {
  GrpcTransportOptions o;
  o.max_queue_messages = 3;
  Node a(1, o);
  FeedbackLog log;
  a.t->set_feedback(log.feedback());
  a.t->add_peer(NodeId(2), local(free_port()));  // nobody listens
  a.start();
  a.t->send({msg(1, 2, 1), msg(1, 2, 2), msg(1, 2, 3), small_snap(1, 2)});  // the snap is dropped
  EXPECT_EQ(log.snap_lost.load(), 0);  // never reported from inside send()
  ASSERT_TRUE(wait_until([&] { return log.unreachable >= 2 && log.snap_lost == 1; }));
  EXPECT_EQ(log.snap_ok.load(), 0);
}

TEST_F(GrpcTransportTest, FeedbackReportsSnapshotsWritten) {
  Node a(1), b(2);
  FeedbackLog log;
  a.t->set_feedback(log.feedback());
  a.start();
  b.start();
  a.t->add_peer(NodeId(2), b.address());
  Message big = small_snap(1, 2);
  big.snapshot.data.assign(3u << 20, 'z');  // chunked
  a.t->send({small_snap(1, 2), msg(1, 2, 2), big});
  ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) == 3 && log.snap_ok == 2; }));
  EXPECT_EQ(log.snap_lost.load(), 0);
  EXPECT_EQ(log.unreachable.load(), 0);
}

TEST_F(GrpcTransportTest, ByteBoundOnTheQueue) {
  GrpcTransportOptions o;
  o.max_queue_bytes = 1 << 20;
  Node a(1, o);
  a.t->add_peer(NodeId(2), local(free_port()));
  a.start();
  std::vector<Message> v;
  for (uint64_t i = 1; i <= 100; ++i) v.push_back(msg(1, 2, i, 100 << 10));  // 100 KiB each
  a.t->send(std::move(v));
  auto p = a.peer(2);
  EXPECT_GE(p.queued_messages, 9u);
  EXPECT_LE(p.queued_messages, 10u);
  EXPECT_EQ(p.queued_messages + p.dropped_queue_full, 100u);
}

TEST_F(GrpcTransportTest, FortyMiBSnapshotArrivesIntactBetweenSmallMessages) {
  Node a(1), b(2);
  a.start();
  b.start();
  a.t->add_peer(NodeId(2), b.address());

  Message snap;
  snap.type = MessageType::kSnap;
  snap.from = NodeId(1);
  snap.to = NodeId(2);
  snap.term = Term(2);
  snap.snapshot.metadata.index = LogIndex(12345);
  snap.snapshot.metadata.term = Term(2);
  snap.snapshot.metadata.conf.voters = {NodeId(1), NodeId(2), NodeId(3)};
  snap.snapshot.data.resize(40u << 20);
  uint64_t x = 0x1234567;
  for (auto& c : snap.snapshot.data) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    c = static_cast<char>(x >> 56);
  }
  a.t->send({msg(1, 2, 1), snap, msg(1, 2, 3)});
  ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) == 3; }, 30s));
  std::lock_guard lk(b.sink.mu);
  const auto& got = b.sink.by_sender[NodeId(1)];
  EXPECT_EQ(got[0].term, Term(1));
  EXPECT_TRUE(got[1] == snap);
  EXPECT_EQ(got[2].term, Term(3));
  EXPECT_TRUE(wait_until([&] { return a.peer(2).messages_sent == 3; }));
  EXPECT_GE(a.peer(2).chunks_sent, 40u);
}

TEST_F(GrpcTransportTest, OversizedMessageIsDroppedAndCounted) {
  GrpcTransportOptions o;
  o.max_message_bytes = 64 << 10;
  Node a(1, o), b(2);
  a.start();
  b.start();
  a.t->add_peer(NodeId(2), b.address());
  a.t->send({msg(1, 2, 1, 100 << 10), msg(1, 2, 2)});
  ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) == 1; }));
  EXPECT_EQ(a.peer(2).dropped_oversized, 1u);
}

TEST_F(GrpcTransportTest, RemovePeerAndReaddress) {
  Node a(1), b(2), c(2);
  a.start();
  b.start();
  c.start();
  a.t->add_peer(NodeId(2), b.address());
  a.t->send({msg(1, 2, 1)});
  ASSERT_TRUE(wait_until([&] { return b.sink.count() == 1; }));
  a.t->add_peer(NodeId(2), c.address());  // node 2 moved
  a.t->send({msg(1, 2, 2)});
  ASSERT_TRUE(wait_until([&] { return c.sink.count() == 1; }));
  a.t->remove_peer(NodeId(2));
  a.t->send({msg(1, 2, 3)});
  EXPECT_EQ(a.t->stats().dropped_unknown_peer, 1u);
  EXPECT_TRUE(a.t->stats().peers.empty());
}

TEST_F(GrpcTransportTest, StopIsPromptIdempotentAndNoCallbackAfterwards) {
  auto a = std::make_unique<Node>(1);
  auto b = std::make_unique<Node>(2);
  std::atomic<bool> stopped{false};
  std::atomic<int> late{0};
  std::atomic<int> calls{0};
  a->start();
  b->t->start([&](Message) {
    if (stopped) late.fetch_add(1);
    calls.fetch_add(1);
  });
  a->t->add_peer(NodeId(2), b->address());
  a->t->add_peer(NodeId(3), local(free_port()));  // unreachable: its writer is backing off
  b->t->add_peer(NodeId(1), a->address());
  std::atomic<bool> done{false};
  std::thread spam([&] {
    uint64_t i = 0;
    while (!done) {
      a->t->send({msg(1, 2, ++i, 1000), msg(1, 3, i)});
      if (i % 100 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  const bool flowing = wait_until([&] { return calls > 100; });
  EXPECT_TRUE(flowing);  // not ASSERT: `spam` must be joined below either way

  auto t0 = Clock::now();
  b->t->stop();
  stopped = true;
  EXPECT_LT(Clock::now() - t0, 1s);
  b->t->stop();

  t0 = Clock::now();
  a->t->stop();
  EXPECT_LT(Clock::now() - t0, 1s);
  a->t->stop();
  done = true;
  spam.join();
  a->t->send({msg(1, 2, 1)});  // after stop: dropped, no crash
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(late.load(), 0);
  a.reset();  // destructors call stop() again
  b.reset();
}

// Mutual TLS with a throwaway CA made by the openssl CLI (skipped when it is missing).
class TlsFiles {
 public:
  TlsFiles() {
    char tmpl[] = "/tmp/balsa-tls-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    const std::string d = dir_;
    const std::string cmd =
        "cd " + d + " && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
        "  -subj /CN=balsa-test-ca >/dev/null 2>&1 && "
        "openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=node "
        "  >/dev/null 2>&1 && "
        "printf 'subjectAltName=IP:127.0.0.1,DNS:node.balsa\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ext && "
        "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem "
        "  -days 1 -extfile ext >/dev/null 2>&1";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  ~TlsFiles() { std::system(("rm -rf " + std::string(dir_)).c_str()); }
  bool ok() const { return ok_; }
  GrpcTransportTls tls() const {
    const std::string d = dir_;
    return GrpcTransportTls{d + "/ca.pem", d + "/node.pem", d + "/node.key", true, ""};
  }

 private:
  std::string dir_;
  bool ok_ = false;
};

TEST_F(GrpcTransportTest, MutualTlsDeliversAndPlaintextPeerCannotConnect) {
  TlsFiles files;
  if (!files.ok()) GTEST_SKIP() << "openssl CLI unavailable";
  GrpcTransportOptions o;
  o.tls = files.tls();
  Node a(1, o), b(2, o), plain(3);
  a.start();
  b.start();
  plain.start();
  a.t->add_peer(NodeId(2), b.address());
  plain.t->add_peer(NodeId(2), b.address());
  for (uint64_t i = 1; i <= 100; ++i) a.t->send({msg(1, 2, i)});
  ASSERT_TRUE(wait_until([&] { return b.sink.count_from(1) == 100; }));
  EXPECT_TRUE(b.sink.in_order_from(1));

  plain.t->send({msg(3, 2, 1)});
  ASSERT_TRUE(wait_until([&] { return plain.peer(2).connect_failures >= 2; }));
  EXPECT_EQ(b.sink.count_from(3), 0u);
}

TEST_F(GrpcTransportTest, MissingTlsFilesThrowOnStart) {
  GrpcTransportOptions o;
  o.tls = GrpcTransportTls{"/nonexistent/ca.pem", "/nonexistent/c.pem", "/nonexistent/k.pem", true, ""};
  Node a(1, o);
  EXPECT_THROW(a.start(), std::runtime_error);
}

TEST_F(GrpcTransportTest, PortInUseThrowsOnStart) {
  Node a(1);
  a.start();
  Node b(2, {}, a.t->listen_port());
  EXPECT_THROW(b.start(), std::runtime_error);
}

TEST_F(GrpcTransportTest, StopBeforeStartAndDestructorOnly) {
  { Node a(1); }
  Node b(2);
  b.t->stop();
  b.t->stop();
}

}  // namespace
}  // namespace balsa

namespace balsa {
namespace {

// Not part of the suite: --gtest_also_run_disabled_tests --gtest_filter=*Throughput*
TEST_F(GrpcTransportTest, DISABLED_Throughput) {
  for (size_t payload : {0, 256, 4096}) {
    Node a(1), b(2);
    a.start();
    b.start();
    a.t->add_peer(NodeId(2), b.address());
    constexpr uint64_t kN = 200000;
    auto t0 = Clock::now();
    for (uint64_t i = 1; i <= kN; i += 100) {
      std::vector<Message> v;
      for (uint64_t j = i; j < i + 100; ++j) v.push_back(msg(1, 2, j, payload));
      while (a.peer(2).queued_messages > 3000) std::this_thread::sleep_for(50us);
      a.t->send(std::move(v));
    }
    ASSERT_TRUE(wait_until([&] { return b.sink.count() == kN; }, 60s));
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    auto p = a.peer(2);
    std::printf("payload %5zu B: %.0f msgs/s, %.1f MB/s, %.1f msgs/batch\n", payload, kN / s,
                p.bytes_sent / s / 1e6, double(p.messages_sent) / double(p.batches_sent));
  }
}

// Not part of the suite: one message there and one back, sequentially.
TEST_F(GrpcTransportTest, DISABLED_RoundTripLatency) {
  Node a(1), b(2);
  std::atomic<uint64_t> echoed{0};
  GrpcTransport* bt = b.t.get();
  a.t->start([&](Message m) {
    echoed.store(m.term.value);
    echoed.notify_one();
  });
  b.t->start([&](Message m) { bt->send({msg(2, 1, m.term.value)}); });
  a.t->add_peer(NodeId(2), b.address());
  b.t->add_peer(NodeId(1), a.address());
  std::vector<double> us;
  for (uint64_t i = 1; i <= 5000; ++i) {
    auto t0 = Clock::now();
    a.t->send({msg(1, 2, i)});
    for (uint64_t seen = echoed.load(); seen < i; seen = echoed.load()) echoed.wait(seen);
    if (i > 100) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("round trip: p50 %.0f us, p99 %.0f us\n", us[us.size() / 2], us[us.size() * 99 / 100]);
}

}  // namespace
}  // namespace balsa
