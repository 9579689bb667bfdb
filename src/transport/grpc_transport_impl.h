// Internals of GrpcTransport (grpc_transport.h), shared by its three files:
//   grpc_transport.cc  the facade and the lifecycle: server, start, stop, stats
//   grpc_sender.cc     GrpcSender: per peer, a message writer and a snapshot streamer
//   grpc_receiver.cc   GrpcReceiver: the server side of both (message streams, snapshot calls)
// Not a public header.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/rng.h"
#include "transport/grpc_transport.h"
#include "transport/peer.grpc.pb.h"
#include "transport/snapshot_stream.h"

namespace balsa::grpc_internal {

using Clock = std::chrono::steady_clock;
namespace pb = ::balsa::transport;

// Lets at most one log line per period through; the rest are only counted.
class LogLimiter {
 public:
  explicit LogLimiter(Clock::duration period) : period_(period) {}
  // Returns the number of lines suppressed since the last one let through, or -1 to suppress.
  int64_t allow() {
    auto now = Clock::now().time_since_epoch().count();
    auto next = next_.load(std::memory_order_relaxed);
    if (now < next || !next_.compare_exchange_strong(next, now + period_.count())) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return -1;
    }
    return suppressed_.exchange(0, std::memory_order_relaxed);
  }

 private:
  const Clock::duration period_;
  std::atomic<Clock::rep> next_{0};
  std::atomic<int64_t> suppressed_{0};
};

// Counts handler calls in progress so that stop() can wait for them and refuse new ones.
class CallbackGate {
 public:
  bool enter() {
    std::lock_guard lk(mu_);
    if (closed_) return false;
    ++active_;
    return true;
  }
  void exit() {
    std::lock_guard lk(mu_);
    if (--active_ == 0) cv_.notify_all();
  }
  void close() {
    std::unique_lock lk(mu_);
    closed_ = true;
    cv_.wait(lk, [&] { return active_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;      // guarded by mu_
  bool closed_ = false;  // guarded by mu_
};

inline void inc(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
inline uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

std::string read_file(const std::string& path);

// What the sender and the receiver share. Set up before start(); read-only afterwards except
// the gate and the limiters, which are thread-safe.
struct Shared {
  explicit Shared(GrpcTransportOptions o) : opt(std::move(o)) {}
  const GrpcTransportOptions opt;
  Transport::Handler handler;
  DeliveryFeedback feedback;
  SnapshotEndpoints snapshots;
  CallbackGate gate;
  LogLimiter refuse_log{std::chrono::seconds(1)};
  LogLimiter connect_log{std::chrono::seconds(1)};
  std::shared_ptr<grpc::ChannelCredentials> channel_creds;  // set by start(), before any thread
};

// The sending half: one Peer per remote node, each with a writer thread for messages (one
// long-lived RaftPeer.Stream call) and a snapshot thread for transfers (RaftSnapshot.Transfer
// calls on a channel, hence a TCP connection, of its own).
class GrpcSender {
 public:
  explicit GrpcSender(Shared& s) : s_(s) {}
  void start();  // starts the threads of the peers added so far
  void add_peer(NodeId id, std::string address);
  void remove_peer(NodeId id);
  void send(std::vector<Message> msgs);
  void stop();  // closes every peer and joins its threads
  void fill_stats(TransportStats* out) const;
  void count_unknown_peer() { inc(dropped_unknown_peer_); }

 private:
  struct Peer;
  enum class TransferEnd : uint8_t { kDone, kBroken, kRefused, kSuperseded, kClosing };

  std::shared_ptr<grpc::Channel> make_channel(const Peer& p) const;
  bool wait_connected(Peer& p, grpc::Channel& channel);
  // Sleeps the backoff (false if the peer closes meanwhile) and doubles it.
  bool sleep_backoff(Peer& p, Rng& rng, std::condition_variable& cv, std::chrono::milliseconds* delay);
  void run_writer(Peer& p);
  // Writes everything queued until the stream breaks (false) or the peer closes (true).
  bool pump(Peer& p, grpc::ClientWriter<pb::Batch>& stream, grpc::Channel& channel);
  void run_snapshots(Peer& p);
  TransferEnd transfer_once(Peer& p, SnapshotSendSession& session, RateLimiter& limiter);
  bool snapshot_superseded(Peer& p, const SnapshotMetadata& md);
  void start_threads(const std::shared_ptr<Peer>& p);
  void close_peer(Peer& p);
  // Feedback, from the peer's threads with no lock held.
  void report_lost(Peer& p, size_t snaps_lost);
  void report_snapshots(Peer& p, size_t n, bool ok);
  void report_refused_snapshots(Peer& p);

  Shared& s_;
  mutable std::mutex mu_;
  std::map<NodeId, std::shared_ptr<Peer>> peers_;  // guarded by mu_
  bool started_ = false;                           // guarded by mu_
  bool stopped_ = false;                           // guarded by mu_
  std::atomic<uint64_t> dropped_unknown_peer_{0};
};

// One remote node as the sender sees it (both threads' state).
struct GrpcSender::Peer {
  Peer(NodeId i, std::string a, uint64_t seed)
      : id(i), address(std::move(a)), rng(seed ^ (i.value * 0x9e3779b97f4a7c15ULL)),
        snap_rng(seed ^ (i.value * 0xbf58476d1ce4e5b9ULL)) {}

  const NodeId id;
  const std::string address;
  Rng rng;       // writer thread only
  Rng snap_rng;  // snapshot thread only

  std::mutex mu;
  std::condition_variable cv;       // the writer's
  std::condition_variable snap_cv;  // the snapshot thread's
  std::deque<Message> queue;                  // guarded by mu
  size_t queued_bytes = 0;                    // guarded by mu; sum of approx_bytes over queue
  bool closing = false;                       // guarded by mu; set once, ends both threads
  grpc::ClientContext* active_ctx = nullptr;  // guarded by mu; the open stream, for cancelling
  grpc::ClientContext* snap_ctx = nullptr;    // guarded by mu; the open transfer call
  size_t snaps_dropped_unreported = 0;        // guarded by mu; kSnap refused or replaced, not yet reported
  std::optional<Message> snap_pending;        // guarded by mu; the newest kSnap not yet started
  std::optional<SnapshotMetadata> snap_current;  // guarded by mu; the transfer running
  std::thread writer;
  std::thread snapshotter;

  std::atomic<bool> connected{false};
  std::atomic<uint64_t> messages_sent{0}, batches_sent{0}, bytes_sent{0}, chunks_sent{0},
      dropped_queue_full{0}, dropped_send_failed{0}, dropped_oversized{0}, connects{0},
      connect_failures{0}, streams_refused{0}, snapshots_sent{0}, snapshots_failed{0},
      snapshot_bytes_sent{0}, snapshot_connects{0}, snapshot_resumes{0}, snapshot_chunks_refused{0};
};

// State of one incoming message stream: the sender it is bound to and a chunked message in
// progress. Per sender: which of its streams may deliver. A sender opens a new stream only
// after giving up on the old one, but the old one may still hold batches in the receiver's
// buffers; without this a late batch of the old stream could be delivered after newer
// messages. Deliveries of one sender are serialized under `mu`, and a stream whose generation
// is no longer current is ended instead of delivering.
struct SenderLink {
  std::mutex mu;
  uint64_t generation = 0;  // guarded by mu; bumped when a new stream from this sender binds
};

struct InboundStream {
  NodeId from = kNoNode;             // fixed by the first batch
  std::shared_ptr<SenderLink> link;  // set with `from`
  uint64_t generation = 0;           // this stream's generation on `link`
  bool in_chunk = false;
  uint64_t total_size = 0;
  std::string reassembly;  // the chunked message received so far
  uint64_t delivered = 0;
};

// The message side is a raw callback method: the reactor parses each Batch itself, so that a
// malformed protobuf is refused and counted like any other garbage (the generated reader would
// report it as an ordinary end of stream). No thread is held per incoming stream.
using RawService = pb::RaftPeer::WithRawCallbackMethod_Stream<pb::RaftPeer::Service>;

// The receiving half: the RaftPeer service (message streams) and the RaftSnapshot service
// (transfers, handed to Shared::snapshots.receiver).
class GrpcReceiver final : public RawService {
 public:
  explicit GrpcReceiver(Shared& s) : s_(s), snapshot_service_(*this) {}
  grpc::Service* snapshot_service() { return &snapshot_service_; }

  grpc::ServerReadReactor<grpc::ByteBuffer>* Stream(grpc::CallbackServerContext* ctx,
                                                    grpc::ByteBuffer* response) override;
  // After the server's Shutdown: waits until every reactor has finished.
  void wait_reactors();
  void fill_stats(TransportStats* out) const;

 private:
  class Reactor;
  class SnapshotReactor;
  class SnapshotService final : public pb::RaftSnapshot::CallbackService {
   public:
    explicit SnapshotService(GrpcReceiver& r) : r_(r) {}
    grpc::ServerBidiReactor<pb::SnapshotFrame, pb::SnapshotAck>* Transfer(
        grpc::CallbackServerContext* ctx) override;

   private:
    GrpcReceiver& r_;
  };

  // Checks one batch of an incoming stream and delivers its messages. An error status means:
  // end the stream with it.
  std::optional<grpc::Status> on_batch(InboundStream& in, grpc::ByteBuffer& raw,
                                       grpc::CallbackServerContext* ctx);
  std::optional<grpc::Status> deliver(InboundStream& in, std::string_view bytes,
                                      grpc::CallbackServerContext* ctx);
  // One frame of a snapshot call. Fills *ack, or returns the status to end the call with.
  std::optional<grpc::Status> on_snapshot_frame(NodeId* from, const pb::SnapshotFrame& f,
                                                pb::SnapshotAck* ack, grpc::CallbackServerContext* ctx);
  // Hands a message to the handler unless the transport is stopping; else the status to end
  // the call with.
  std::optional<grpc::Status> hand_over(Message msg);
  grpc::Status refuse(grpc::StatusCode code, std::atomic<uint64_t>& counter,
                      grpc::CallbackServerContext* ctx, const std::string& why);
  void reactor_started();
  void reactor_done();

  Shared& s_;
  SnapshotService snapshot_service_;
  mutable std::mutex mu_;
  std::condition_variable reactors_done_cv_;
  std::map<NodeId, uint64_t> received_from_;               // guarded by mu_
  std::map<NodeId, std::shared_ptr<SenderLink>> senders_;  // guarded by mu_; never shrinks
  int live_reactors_ = 0;                                  // guarded by mu_

  std::atomic<uint64_t> messages_received_{0}, batches_received_{0}, streams_accepted_{0},
      refused_cluster_id_{0}, refused_identity_{0}, decode_errors_{0}, streams_superseded_{0},
      snapshot_calls_{0}, snapshots_delivered_{0};
};

}  // namespace balsa::grpc_internal
