// Streamed snapshots over GrpcTransport: their own connection, resume after a cut, refusals
// of bad chunks from the wire.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/codec.h"
#include "storage/crc32c.h"
#include "storage/sim_fs.h"
#include "transport/grpc_transport.h"
#include "transport/peer.grpc.pb.h"

namespace balsa {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kCluster = 0x5a9;

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 20s) {
  auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A TCP relay on loopback whose connections the test can cut at once (the listener stays, so
// the sender can reconnect).
class Relay {
 public:
  explicit Relay(int upstream_port) : upstream_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~Relay() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    cut();
    for (auto& t : pumps_) t.join();
    std::lock_guard lk(mu_);
    for (int fd : all_fds_) ::close(fd);
  }
  int port() const { return port_; }
  // Breaks every relayed connection.
  void cut() {
    std::lock_guard lk(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    open_fds_.clear();
    cuts_++;
  }

 private:
  void accept_loop() {
    for (;;) {
      int c = ::accept(listen_fd_, nullptr, nullptr);
      if (c < 0) return;
      if (stopping_) {
        ::close(c);
        return;
      }
      int u = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(upstream_));
      if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(u);
        continue;
      }
      std::lock_guard lk(mu_);
      open_fds_.insert(open_fds_.end(), {c, u});
      all_fds_.insert(all_fds_.end(), {c, u});
      pumps_.emplace_back([c, u] { pump(c, u); });
      pumps_.emplace_back([c, u] { pump(u, c); });
    }
  }
  static void pump(int from, int to) {
    char buf[64 << 10];
    for (;;) {
      ssize_t n = ::read(from, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
    }
    ::shutdown(to, SHUT_RDWR);
  }

  const int upstream_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_fds_, all_fds_;
  std::vector<std::thread> pumps_;
  int cuts_ = 0;
};

std::string image(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(&s[i], &x, 8);
  }
  return s;
}

struct Side {
  Side(uint64_t id, SimFileSystem& fs, GrpcTransportOptions o)
      : store(fs, "/n" + std::to_string(id) + "/snap"), receiver(store) {
    o.self = NodeId(id);
    o.cluster_id = kCluster;
    o.seed = id;
    t = std::make_unique<GrpcTransport>(o);
    SnapshotEndpoints e;
    e.open = [this](const SnapshotMetadata& md) { return store.open_file(md); };
    e.receiver = &receiver;
    EXPECT_TRUE(t->set_snapshots(e));
    DeliveryFeedback fb;
    fb.snapshot_sent = [this](NodeId, bool ok) { (ok ? snaps_ok : snaps_lost)++; };
    t->set_feedback(fb);
    t->start([this](Message m) {
      std::lock_guard lk(mu);
      if (m.type == MessageType::kSnap) {
        snaps.push_back(m);
        messages_before_snap = others;
      } else {
        others++;
      }
    });
  }
  ~Side() { t->stop(); }
  PeerLinkStats peer(uint64_t id) const {
    for (const auto& p : t->stats().peers)
      if (p.id == NodeId(id)) return p;
    return {};
  }
  size_t snap_count() {
    std::lock_guard lk(mu);
    return snaps.size();
  }
  size_t other_count() {
    std::lock_guard lk(mu);
    return others;
  }

  SnapshotStore store;
  SnapshotReceiver receiver;
  std::unique_ptr<GrpcTransport> t;
  std::mutex mu;
  std::vector<Message> snaps;
  size_t others = 0;
  size_t messages_before_snap = 0;
  std::atomic<int> snaps_ok{0}, snaps_lost{0};
};

Message snap_msg(const SnapshotMetadata& md) {
  Message m;
  m.type = MessageType::kSnap;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(4);
  m.snapshot.metadata = md;
  return m;
}

Message heartbeat(uint64_t seq) {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.from = NodeId(1);
  m.to = NodeId(2);
  m.term = Term(4);
  m.commit = LogIndex(seq);
  return m;
}

const SnapshotMetadata kMeta{LogIndex(5000), Term(3), ConfState{{NodeId(1), NodeId(2), NodeId(3)}, {}, {}}};

void put_snapshot(SnapshotStore& store, const std::string& data) {
  auto w = store.begin(kMeta);
  w->write(data);
  w->commit();
}

std::string received_image(Side& b) {
  EXPECT_TRUE(b.store.install_received(kMeta));
  return b.store.open(kMeta.index)->read_all();
}

TEST(GrpcSnapshotStream, StreamsOnItsOwnConnectionWhileHeartbeatsFlow) {
  SimFileSystem fs;
  GrpcTransportOptions o;
  o.snapshot.rate_bytes_per_sec = 16u << 20;  // ~1 s for the image: heartbeats flow meanwhile
  Side a(1, fs, o), b(2, fs, GrpcTransportOptions{});
  const std::string data = image(16u << 20, 1);
  put_snapshot(a.store, data);
  a.t->add_peer(NodeId(2), "127.0.0.1:" + std::to_string(b.t->listen_port()));
  a.t->send({snap_msg(kMeta)});
  uint64_t seq = 0;
  while (b.snap_count() == 0 && seq < 4000) {
    a.t->send({heartbeat(++seq)});
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(wait_until([&] { return b.snap_count() == 1; }));
  {
    std::lock_guard lk(b.mu);
    EXPECT_TRUE(b.snaps[0].snapshot.data.empty());  // the image is on disk, not in the message
    EXPECT_EQ(b.snaps[0].snapshot.metadata, kMeta);
    // Heartbeats did not wait behind the image: most of them arrived while it streamed.
    EXPECT_GE(b.messages_before_snap, seq / 2);
    EXPECT_GE(seq, 50u);
  }
  EXPECT_EQ(received_image(b), data);
  ASSERT_TRUE(wait_until([&] { return a.snaps_ok.load() == 1; }));
  EXPECT_EQ(a.snaps_lost.load(), 0);
  const PeerLinkStats p = a.peer(2);
  EXPECT_EQ(p.snapshots_sent, 1u);
  EXPECT_EQ(p.snapshot_connects, 1u);
  EXPECT_EQ(p.snapshot_bytes_sent, a.store.open_file(kMeta)->size());
  EXPECT_EQ(p.chunks_sent, 0u);  // nothing chunked on the message stream
  EXPECT_EQ(b.t->stats().snapshots_received, 1u);
  EXPECT_EQ(b.receiver.stats().refused(), 0u);
}

TEST(GrpcSnapshotStream, ResumesFromTheAcknowledgedChunkAfterTheConnectionIsCut) {
  SimFileSystem fs;
  GrpcTransportOptions o;
  o.snapshot.rate_bytes_per_sec = 16u << 20;
  o.backoff_initial = 20ms;
  Side a(1, fs, o), b(2, fs, GrpcTransportOptions{});
  const std::string data = image(16u << 20, 2);
  put_snapshot(a.store, data);
  const uint64_t file_bytes = a.store.open_file(kMeta)->size();
  Relay relay(b.t->listen_port());
  a.t->add_peer(NodeId(2), "127.0.0.1:" + std::to_string(relay.port()));
  a.t->send({snap_msg(kMeta)});
  ASSERT_TRUE(wait_until([&] { return b.receiver.stats().bytes >= file_bytes / 2; }));
  relay.cut();
  ASSERT_TRUE(wait_until([&] { return b.snap_count() == 1; }));
  EXPECT_EQ(received_image(b), data);
  ASSERT_TRUE(wait_until([&] { return a.snaps_ok.load() == 1; }));
  const SnapshotReceiverStats rs = b.receiver.stats();
  // One resume (a chunk of the dead call processed after the new offer costs one refusal and
  // one more resume, never a byte accepted twice).
  EXPECT_GE(rs.resumed, 1u);
  EXPECT_EQ(rs.completed, 1u);
  EXPECT_EQ(rs.bytes, file_bytes);  // every byte accepted once: resumed, not restarted
  const PeerLinkStats p = a.peer(2);
  EXPECT_GE(p.snapshot_resumes, 1u);
  EXPECT_GE(p.snapshot_connects, 2u);
  // Resent at most the window that was in flight when the link broke.
  EXPECT_LE(p.snapshot_bytes_sent, file_bytes + (o.snapshot.window_chunks + 1) * o.snapshot.chunk_bytes);
  EXPECT_LT(p.snapshot_bytes_sent, file_bytes * 3 / 2);
}

// Frames written by hand on the wire: the receiver refuses and counts, the call stays usable.
TEST(GrpcSnapshotStream, BadChunksFromTheWireAreRefusedAndCounted) {
  SimFileSystem fs;
  Side a(1, fs, GrpcTransportOptions{}), b(2, fs, GrpcTransportOptions{});
  const std::string data = image(3u << 20, 3);
  put_snapshot(a.store, data);
  auto file = a.store.open_file(kMeta);
  std::string bytes(file->size(), '\0');
  file->read_at(0, bytes.data(), bytes.size());

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(b.t->listen_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = transport::RaftSnapshot::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->Transfer(&ctx);
  transport::SnapshotFrame f;
  transport::SnapshotAck ack;
  f.set_cluster_id(kCluster);
  f.set_from(1);
  f.set_offer_message(codec::encode(snap_msg(kMeta)));
  f.set_file_bytes(bytes.size());
  ASSERT_TRUE(stream->Write(f));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(static_cast<SnapshotVerdict>(ack.verdict()), SnapshotVerdict::kOk);
  auto chunk = [&](uint64_t term, uint64_t off, size_t n, bool corrupt) {
    transport::SnapshotFrame c;
    c.set_cluster_id(kCluster);
    c.set_from(1);
    c.set_term(term);
    c.set_offset(off);
    std::string d = bytes.substr(off, n);
    c.set_crc(crc32c(d));
    if (corrupt) d[0] ^= 0x40;
    c.set_data(d);
    EXPECT_TRUE(stream->Write(c));
    EXPECT_TRUE(stream->Read(&ack));
    return static_cast<SnapshotVerdict>(ack.verdict());
  };
  const size_t n = 1 << 20;
  EXPECT_EQ(chunk(4, 0, n, false), SnapshotVerdict::kOk);
  EXPECT_EQ(chunk(4, 2 * n, n, false), SnapshotVerdict::kOutOfOrder);
  EXPECT_EQ(ack.offset(), n);
  EXPECT_EQ(chunk(4, n, n, true), SnapshotVerdict::kBadChecksum);
  EXPECT_EQ(chunk(3, n, n, false), SnapshotVerdict::kOldTerm);
  // After the refusals the transfer goes on from the receiver's offset.
  EXPECT_EQ(chunk(4, n, n, false), SnapshotVerdict::kOk);
  EXPECT_EQ(chunk(4, 2 * n, bytes.size() - 2 * n, false), SnapshotVerdict::kDone);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  const SnapshotReceiverStats rs = b.receiver.stats();
  EXPECT_EQ(rs.refused_out_of_order, 1u);
  EXPECT_EQ(rs.refused_bad_checksum, 1u);
  EXPECT_EQ(rs.refused_old_term, 1u);
  EXPECT_EQ(rs.completed, 1u);
  ASSERT_TRUE(wait_until([&] { return b.snap_count() == 1; }));
  EXPECT_EQ(received_image(b), data);

  // A wrong cluster id ends the call.
  grpc::ClientContext ctx2;
  auto s2 = stub->Transfer(&ctx2);
  f.set_cluster_id(kCluster + 1);
  s2->Write(f);
  EXPECT_FALSE(s2->Read(&ack));
  EXPECT_EQ(s2->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(b.t->stats().refused_cluster_id, 1u);
}

TEST(GrpcSnapshotStream, ASnapshotThatIsGoneIsReportedLost) {
  SimFileSystem fs;
  Side a(1, fs, GrpcTransportOptions{}), b(2, fs, GrpcTransportOptions{});
  a.t->add_peer(NodeId(2), "127.0.0.1:" + std::to_string(b.t->listen_port()));
  a.t->send({snap_msg(kMeta)});  // never written to a's store
  ASSERT_TRUE(wait_until([&] { return a.snaps_lost.load() == 1; }));
  EXPECT_EQ(a.peer(2).snapshots_failed, 1u);
  EXPECT_EQ(b.snap_count(), 0u);
}

}  // namespace
}  // namespace balsa
