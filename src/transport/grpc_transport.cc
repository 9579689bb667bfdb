#include "transport/grpc_transport.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/assert.h"
#include "core/codec.h"
#include "core/rng.h"
#include "transport/peer.grpc.pb.h"

namespace balsa {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("transport: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Bytes a queued message counts for against max_queue_bytes (close to its encoded size).
size_t approx_bytes(const Message& m) {
  size_t n = 64 + m.context.size() + m.snapshot.data.size();
  for (const auto& e : m.entries) n += e.payload_bytes();
  return n;
}

// Protobuf framing of one `repeated bytes` entry: a 1-byte tag and a varint length (<= 5 bytes
// below 4 GiB).
constexpr size_t kEntryOverheadBytes = 6;

void inc(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
uint64_t get(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

}  // namespace

// State of one incoming stream: the sender it is bound to and a chunked message in progress.
// Per sender: which of its streams may deliver. A sender opens a new stream only after giving up
// on the old one, but the old one may still hold batches in the receiver's buffers; without
// this a late batch of the old stream could be delivered after newer messages. Deliveries of
// one sender are serialized under `mu`, and a stream whose generation is no longer current is
// ended instead of delivering.
struct SenderLink {
  std::mutex mu;
  uint64_t generation = 0;  // guarded by mu; bumped when a new stream from this sender binds
};

struct InboundStream {
  NodeId from = kNoNode;   // fixed by the first batch
  std::shared_ptr<SenderLink> link;  // set with `from`
  uint64_t generation = 0;           // this stream's generation on `link`
  bool in_chunk = false;
  uint64_t total_size = 0;
  std::string reassembly;  // the chunked message received so far
  uint64_t delivered = 0;
};

// The receiving side is a raw callback method: the reactor parses each Batch itself, so that a
// malformed protobuf is refused and counted like any other garbage (the generated reader would
// report it as an ordinary end of stream). No thread is held per incoming stream.
using RawService = pb::RaftPeer::WithRawCallbackMethod_Stream<pb::RaftPeer::Service>;

class GrpcTransport::Impl final : public RawService {
 public:
  explicit Impl(GrpcTransportOptions o) : opt_(std::move(o)) {
    BALSA_ASSERT(opt_.self != kNoNode, "transport needs a local node id");
    BALSA_ASSERT(opt_.max_batch_bytes > 0 && opt_.max_batch_bytes + 4096 <= opt_.max_grpc_message_bytes,
                 "max_batch_bytes {} must leave room under max_grpc_message_bytes {}",
                 opt_.max_batch_bytes, opt_.max_grpc_message_bytes);
    BALSA_ASSERT(opt_.backoff_initial.count() > 0 && opt_.backoff_max >= opt_.backoff_initial,
                 "bad backoff");
  }

  ~Impl() override { stop(); }

  void start(Handler handler);
  void add_peer(NodeId id, std::string address);
  void remove_peer(NodeId id);
  void send(std::vector<Message> msgs);
  void stop();
  void set_feedback(DeliveryFeedback f) {
    std::lock_guard lk(mu_);
    BALSA_ASSERT(!started_, "set_feedback after start");
    feedback_ = std::move(f);
  }
  int listen_port() const { return port_.load(); }
  TransportStats stats() const;

  grpc::ServerReadReactor<grpc::ByteBuffer>* Stream(grpc::CallbackServerContext* ctx,
                                                    grpc::ByteBuffer* response) override;

  // Checks one batch of an incoming stream and delivers its messages. An error status means:
  // end the stream with it.
  std::optional<grpc::Status> on_batch(InboundStream& in, grpc::ByteBuffer& raw,
                                       grpc::CallbackServerContext* ctx);
  void reactor_done();

 private:
  struct Peer {
    Peer(NodeId i, std::string a, uint64_t seed)
        : id(i), address(std::move(a)), rng(seed ^ (i.value * 0x9e3779b97f4a7c15ULL)) {}

    const NodeId id;
    const std::string address;
    Rng rng;  // writer thread only

    std::mutex mu;
    std::condition_variable cv;
    std::deque<Message> queue;                 // guarded by mu
    size_t queued_bytes = 0;                   // guarded by mu; sum of approx_bytes over queue
    bool closing = false;                      // guarded by mu; set once, ends the writer
    grpc::ClientContext* active_ctx = nullptr;  // guarded by mu; the open stream, for cancelling
    size_t snaps_dropped_unreported = 0;       // guarded by mu; kSnap refused by send(), not yet reported
    std::thread writer;

    std::atomic<bool> connected{false};
    std::atomic<uint64_t> messages_sent{0}, batches_sent{0}, bytes_sent{0}, chunks_sent{0},
        dropped_queue_full{0}, dropped_send_failed{0}, dropped_oversized{0}, connects{0},
        connect_failures{0}, streams_refused{0};
  };

  std::shared_ptr<grpc::ChannelCredentials> make_channel_credentials() const;
  std::shared_ptr<grpc::Channel> make_channel(const Peer& p) const;
  bool wait_connected(Peer& p, grpc::Channel& channel);
  void sleep_backoff(Peer& p, std::chrono::milliseconds* delay);
  void run_writer(Peer& p);
  // Writes everything queued until the stream breaks (false) or the peer closes (true).
  bool pump(Peer& p, grpc::ClientWriter<pb::Batch>& stream, grpc::Channel& channel);
  void start_writer(const std::shared_ptr<Peer>& p);
  void close_peer(Peer& p);
  // Feedback, from the writer thread with no lock held.
  void report_lost(Peer& p, size_t snaps_lost);
  void report_snapshots(Peer& p, size_t n, bool ok);
  void report_refused_snapshots(Peer& p);
  grpc::Status refuse(grpc::StatusCode code, std::atomic<uint64_t>& counter,
                      grpc::CallbackServerContext* ctx, const std::string& why);
  std::optional<grpc::Status> deliver(InboundStream& in, std::string_view bytes,
                                      grpc::CallbackServerContext* ctx);
  class Reactor;

  const GrpcTransportOptions opt_;
  Handler handler_;
  DeliveryFeedback feedback_;  // set before start(), read by writer threads
  CallbackGate gate_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::ChannelCredentials> channel_creds_;  // set by start(), before any writer
  std::atomic<int> port_{0};

  mutable std::mutex mu_;
  std::map<NodeId, std::shared_ptr<Peer>> peers_;  // guarded by mu_
  bool started_ = false;                           // guarded by mu_
  bool stopped_ = false;                           // guarded by mu_

  mutable std::mutex recv_mu_;
  std::condition_variable reactors_done_cv_;
  std::map<NodeId, uint64_t> received_from_;  // guarded by recv_mu_
  std::map<NodeId, std::shared_ptr<SenderLink>> senders_;  // guarded by recv_mu_; never shrinks
  int live_reactors_ = 0;                     // guarded by recv_mu_

  std::atomic<uint64_t> messages_received_{0}, batches_received_{0}, streams_accepted_{0},
      refused_cluster_id_{0}, refused_identity_{0}, decode_errors_{0}, dropped_unknown_peer_{0},
      streams_superseded_{0};

  LogLimiter refuse_log_{1s};
  LogLimiter connect_log_{1s};
};

// ---------------------------------------------------------------------------------------------
// Lifecycle

void GrpcTransport::Impl::start(Handler handler) {
  std::unique_lock lk(mu_);
  BALSA_ASSERT(!started_ && !stopped_, "GrpcTransport::start called twice or after stop");
  handler_ = std::move(handler);

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (opt_.tls) {
    grpc::SslServerCredentialsOptions ssl(
        opt_.tls->require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_root_certs = read_file(opt_.tls->ca_file);
    ssl.pem_key_cert_pairs.push_back({read_file(opt_.tls->key_file), read_file(opt_.tls->cert_file)});
    creds = grpc::SslServerCredentials(ssl);
  }
  channel_creds_ = make_channel_credentials();  // read TLS files once; failures throw here
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opt_.listen_address, creds, &port);
  builder.RegisterService(this);
  builder.SetMaxReceiveMessageSize(static_cast<int>(opt_.max_grpc_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(opt_.max_grpc_message_bytes));
  // A second server on the same port must fail, not silently share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Accept the clients' keepalive pings (every 10 s) instead of answering with GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  server_ = builder.BuildAndStart();
  port_ = port;
  if (!server_ || port == 0) {
    server_.reset();
    throw std::runtime_error("transport: cannot listen on " + opt_.listen_address);
  }
  started_ = true;
  spdlog::info("transport: node {} listening on {} (port {}, cluster {:#x}, {})", opt_.self.value,
               opt_.listen_address, port, opt_.cluster_id, opt_.tls ? "tls" : "insecure");
  for (auto& [id, p] : peers_) start_writer(p);
}

void GrpcTransport::Impl::stop() {
  std::map<NodeId, std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
  }
  for (auto& [id, p] : peers) close_peer(*p);
  if (server_) {
    // Deadline now: cancel the incoming streams at once. Shutdown returns after every handler
    // has returned; the gate makes "no callback after stop()" explicit regardless.
    server_->Shutdown(std::chrono::system_clock::now());
    // Reactors call back into this object until OnDone; wait for the last one.
    std::unique_lock lk(recv_mu_);
    reactors_done_cv_.wait(lk, [&] { return live_reactors_ == 0; });
  }
  gate_.close();
  server_.reset();
  spdlog::info("transport: node {} stopped", opt_.self.value);
}

void GrpcTransport::Impl::add_peer(NodeId id, std::string address) {
  BALSA_ASSERT(id != opt_.self && id != kNoNode, "bad peer id {}", id.value);
  std::shared_ptr<Peer> old;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    auto it = peers_.find(id);
    if (it != peers_.end()) {
      if (it->second->address == address) return;
      old = it->second;
    }
    auto p = std::make_shared<Peer>(id, std::move(address), opt_.seed);
    peers_[id] = p;
    if (started_) start_writer(p);
  }
  if (old) close_peer(*old);
}

void GrpcTransport::Impl::remove_peer(NodeId id) {
  std::shared_ptr<Peer> p;
  {
    std::lock_guard lk(mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    p = std::move(it->second);
    peers_.erase(it);
  }
  close_peer(*p);
}

void GrpcTransport::Impl::start_writer(const std::shared_ptr<Peer>& p) {
  p->writer = std::thread([this, p] { run_writer(*p); });
}

void GrpcTransport::Impl::close_peer(Peer& p) {
  {
    std::lock_guard lk(p.mu);
    p.closing = true;
    inc(p.dropped_send_failed, p.queue.size());
    p.queue.clear();
    p.queued_bytes = 0;
    if (p.active_ctx) p.active_ctx->TryCancel();
    p.cv.notify_all();
  }
  if (p.writer.joinable()) p.writer.join();
}

void GrpcTransport::Impl::report_snapshots(Peer& p, size_t n, bool ok) {
  if (!feedback_.snapshot_sent) return;
  for (size_t i = 0; i < n; ++i) feedback_.snapshot_sent(p.id, ok);
}

void GrpcTransport::Impl::report_lost(Peer& p, size_t snaps_lost) {
  if (feedback_.unreachable) feedback_.unreachable(p.id);
  report_snapshots(p, snaps_lost, false);
}

void GrpcTransport::Impl::report_refused_snapshots(Peer& p) {
  size_t n = 0;
  {
    std::lock_guard lk(p.mu);
    std::swap(n, p.snaps_dropped_unreported);
  }
  report_snapshots(p, n, false);
}

// ---------------------------------------------------------------------------------------------
// Sending

void GrpcTransport::Impl::send(std::vector<Message> msgs) {
  std::lock_guard lk(mu_);
  for (auto& m : msgs) {
    auto it = peers_.find(m.to);
    if (it == peers_.end()) {
      inc(dropped_unknown_peer_);
      continue;
    }
    Peer& p = *it->second;
    size_t bytes = approx_bytes(m);
    std::lock_guard plk(p.mu);
    if (p.closing || p.queue.size() >= opt_.max_queue_messages ||
        (!p.queue.empty() && p.queued_bytes + bytes > opt_.max_queue_bytes)) {
      inc(p.dropped_queue_full);
      // Reported by the writer thread: feedback never runs inside send().
      if (m.type == MessageType::kSnap) ++p.snaps_dropped_unreported;
      continue;
    }
    p.queue.push_back(std::move(m));
    p.queued_bytes += bytes;
    if (p.queue.size() == 1) p.cv.notify_one();
  }
}

std::shared_ptr<grpc::ChannelCredentials> GrpcTransport::Impl::make_channel_credentials() const {
  if (!opt_.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_file(opt_.tls->ca_file);
  ssl.pem_private_key = read_file(opt_.tls->key_file);
  ssl.pem_cert_chain = read_file(opt_.tls->cert_file);
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> GrpcTransport::Impl::make_channel(const Peer& p) const {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(static_cast<int>(opt_.max_grpc_message_bytes));
  args.SetMaxReceiveMessageSize(static_cast<int>(opt_.max_grpc_message_bytes));
  // Our own loop owns reconnection: a private subchannel per attempt, so that no shared
  // subchannel sits in gRPC's own (longer) backoff when we retry.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(opt_.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(opt_.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(opt_.backoff_max.count()));
  // Notice a dead peer on an idle link.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (opt_.tls && !opt_.tls->server_name_override.empty()) {
    args.SetSslTargetNameOverride(opt_.tls->server_name_override);
  }
  return grpc::CreateCustomChannel(p.address, channel_creds_, args);
}

bool GrpcTransport::Impl::wait_connected(Peer& p, grpc::Channel& channel) {
  const auto deadline = Clock::now() + opt_.connect_timeout;
  auto state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    {
      std::lock_guard lk(p.mu);
      if (p.closing) return false;
    }
    auto now = Clock::now();
    if (now >= deadline) return false;
    // Short slices keep close_peer() prompt.
    auto slice = std::min(deadline - now, Clock::duration(50ms));
    channel.WaitForStateChange(state, std::chrono::system_clock::now() + slice);
    state = channel.GetState(true);
  }
  return true;
}

void GrpcTransport::Impl::sleep_backoff(Peer& p, std::chrono::milliseconds* delay) {
  auto half = delay->count() / 2;
  auto wait = std::chrono::milliseconds(half + static_cast<int64_t>(p.rng.below(half + 1)));
  *delay = std::min(*delay * 2, opt_.backoff_max);
  std::unique_lock lk(p.mu);
  p.cv.wait_for(lk, wait, [&] { return p.closing; });
}

void GrpcTransport::Impl::run_writer(Peer& p) {
  std::chrono::milliseconds delay = opt_.backoff_initial;
  for (;;) {
    {
      std::lock_guard lk(p.mu);
      if (p.closing) return;
    }
    auto channel = make_channel(p);
    if (!wait_connected(p, *channel)) {
      {
        std::lock_guard lk(p.mu);
        if (p.closing) return;
      }
      inc(p.connect_failures);
      if (feedback_.unreachable) feedback_.unreachable(p.id);
      report_refused_snapshots(p);
      if (auto n = connect_log_.allow(); n >= 0) {
        spdlog::warn("transport: node {} cannot connect to peer {} at {} (retrying; {} similar "
                     "messages suppressed)", opt_.self.value, p.id.value, p.address, n);
      }
      sleep_backoff(p, &delay);
      continue;
    }

    auto stub = pb::RaftPeer::NewStub(channel);
    grpc::ClientContext ctx;
    pb::StreamSummary summary;
    auto stream = stub->Stream(&ctx, &summary);
    {
      std::lock_guard lk(p.mu);
      p.active_ctx = &ctx;
      if (p.closing) ctx.TryCancel();
    }
    inc(p.connects);
    p.connected = true;
    spdlog::info("transport: node {} connected to peer {} at {}", opt_.self.value, p.id.value,
                 p.address);

    bool closing = pump(p, *stream, *channel);
    p.connected = false;
    if (!closing) stream->WritesDone();
    grpc::Status st = stream->Finish();
    {
      std::lock_guard lk(p.mu);
      p.active_ctx = nullptr;
      if (p.closing) return;
    }
    if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
        st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      // Refused: retrying will likely be refused again, so keep backing off.
      inc(p.streams_refused);
      if (auto n = refuse_log_.allow(); n >= 0) {
        spdlog::error("transport: peer {} at {} refused node {}'s stream: {} ({} similar messages "
                      "suppressed)", p.id.value, p.address, opt_.self.value, st.error_message(), n);
      }
    } else {
      delay = opt_.backoff_initial;  // the link worked and broke: retry soon
      spdlog::info("transport: node {} disconnected from peer {} at {}: {}", opt_.self.value,
                   p.id.value, p.address, st.ok() ? std::string("ok") : st.error_message());
    }
    sleep_backoff(p, &delay);
  }
}

bool GrpcTransport::Impl::pump(Peer& p, grpc::ClientWriter<pb::Batch>& stream, grpc::Channel& channel) {
  std::deque<Message> work;
  pb::Batch batch;
  size_t batch_bytes = 0;
  size_t batch_msgs = 0;
  size_t batch_snaps = 0;  // kSnap messages in `batch`

  auto fresh_batch = [&] {
    batch.Clear();
    batch.set_cluster_id(opt_.cluster_id);
    batch.set_from(opt_.self.value);
    batch_bytes = 0;
    batch_msgs = 0;
    batch_snaps = 0;
  };
  // Writes `batch`, which completes `msgs` messages (`snaps_done` of them kSnap). If the stream
  // broke, `lost` messages of this batch (`snaps_lost` kSnap) and everything still in `work`
  // are dropped and reported, and the result is false.
  auto write = [&](size_t msgs, size_t bytes, size_t lost, size_t snaps_done, size_t snaps_lost) {
    if (!stream.Write(batch)) {
      inc(p.dropped_send_failed, lost + work.size());
      for (const auto& m : work) snaps_lost += m.type == MessageType::kSnap ? 1 : 0;
      work.clear();
      report_lost(p, snaps_lost);
      return false;
    }
    inc(p.batches_sent);
    inc(p.messages_sent, msgs);
    inc(p.bytes_sent, bytes);
    report_snapshots(p, snaps_done, true);
    return true;
  };
  auto flush = [&] {
    if (batch_msgs == 0) return true;
    bool ok = write(batch_msgs, batch_bytes, batch_msgs, batch_snaps, batch_snaps);
    fresh_batch();
    return ok;
  };
  auto send_chunked = [&](const std::string& enc, bool is_snap) {
    const size_t snap = is_snap ? 1 : 0;
    const size_t chunk_bytes = opt_.max_batch_bytes;
    for (size_t off = 0; off < enc.size(); off += chunk_bytes) {
      fresh_batch();
      size_t n = std::min(chunk_bytes, enc.size() - off);
      batch.set_chunk(enc.data() + off, n);
      batch.set_chunk_offset(off);
      batch.set_total_size(enc.size());
      bool last = off + n == enc.size();
      batch.set_last_chunk(last);
      if (!write(last ? 1 : 0, n, 1, last ? snap : 0, snap)) return false;
      inc(p.chunks_sent);
      {
        std::lock_guard lk(p.mu);
        if (p.closing) return false;  // the peer is going away: no feedback wanted
      }
    }
    fresh_batch();
    return true;
  };

  fresh_batch();
  for (;;) {
    {
      std::unique_lock lk(p.mu);
      while (!p.closing && p.queue.empty()) {
        // Wake now and then to notice a link that broke while idle.
        if (!p.cv.wait_for(lk, 200ms, [&] { return p.closing || !p.queue.empty(); })) {
          lk.unlock();
          auto state = channel.GetState(false);
          lk.lock();
          if (state != GRPC_CHANNEL_READY) return p.closing;
        }
      }
      if (p.closing) return true;
      work.swap(p.queue);
      p.queued_bytes = 0;
    }
    report_refused_snapshots(p);
    // A message stays at the front of `work` until it is in `batch` or being chunked, so a
    // failed write accounts for it exactly once.
    while (!work.empty()) {
      const MessageType type = work.front().type;
      const bool is_snap = type == MessageType::kSnap;
      std::string enc = codec::encode(work.front());
      if (enc.size() > opt_.max_message_bytes) {
        work.pop_front();
        inc(p.dropped_oversized);
        if (is_snap) report_snapshots(p, 1, false);
        if (auto n = refuse_log_.allow(); n >= 0) {
          spdlog::error("transport: node {} dropped a {} message of {} bytes to peer {} "
                        "(max_message_bytes {}; {} similar messages suppressed)",
                        opt_.self.value, to_string(type), enc.size(), p.id.value,
                        opt_.max_message_bytes, n);
        }
        continue;
      }
      if (enc.size() + kEntryOverheadBytes > opt_.max_batch_bytes) {
        if (!flush()) return false;
        work.pop_front();
        if (!send_chunked(enc, is_snap)) return false;
        continue;
      }
      // Count each entry's protobuf framing too (tag + length varint), so that a batch of many
      // tiny messages also stays under the cap.
      const size_t framed = enc.size() + kEntryOverheadBytes;
      if (batch_bytes + framed > opt_.max_batch_bytes && !flush()) return false;
      work.pop_front();
      batch_bytes += framed;
      ++batch_msgs;
      if (is_snap) ++batch_snaps;
      batch.add_messages(std::move(enc));
    }
    if (!flush()) return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Receiving

grpc::Status GrpcTransport::Impl::refuse(grpc::StatusCode code, std::atomic<uint64_t>& counter,
                                         grpc::CallbackServerContext* ctx, const std::string& why) {
  inc(counter);
  if (auto n = refuse_log_.allow(); n >= 0) {
    spdlog::error("transport: node {} closed stream from {}: {} ({} similar messages suppressed)",
                  opt_.self.value, ctx->peer(), why, n);
  }
  return grpc::Status(code, why);
}

class GrpcTransport::Impl::Reactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  Reactor(Impl* impl, grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response)
      : impl_(impl), ctx_(ctx), response_(response) {
    StartRead(&buf_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the sender half-closed, or the call was cancelled
      pb::StreamSummary summary;
      summary.set_messages_received(in_.delivered);
      bool own = false;
      grpc::SerializationTraits<pb::StreamSummary>::Serialize(summary, response_, &own);
      Finish(grpc::Status::OK);
      return;
    }
    if (auto err = impl_->on_batch(in_, buf_, ctx_)) {
      Finish(*err);
      return;
    }
    StartRead(&buf_);
  }

  void OnDone() override {
    impl_->reactor_done();  // last touch of impl_
    delete this;
  }

 private:
  Impl* const impl_;
  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer buf_;
  InboundStream in_;
};

grpc::ServerReadReactor<grpc::ByteBuffer>* GrpcTransport::Impl::Stream(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response) {
  inc(streams_accepted_);
  {
    std::lock_guard lk(recv_mu_);
    ++live_reactors_;
  }
  return new Reactor(this, ctx, response);
}

void GrpcTransport::Impl::reactor_done() {
  std::lock_guard lk(recv_mu_);
  if (--live_reactors_ == 0) reactors_done_cv_.notify_all();
}

std::optional<grpc::Status> GrpcTransport::Impl::deliver(InboundStream& in, std::string_view bytes,
                                                         grpc::CallbackServerContext* ctx) {
  using grpc::StatusCode;
  auto msg = codec::decode<Message>(bytes);
  if (!msg) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                  fmt::format("undecodable message of {} bytes from node {}", bytes.size(), in.from.value));
  }
  if (msg->from != in.from || msg->to != opt_.self) {
    return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                  fmt::format("message {}->{} on a stream from node {} to node {}", msg->from.value,
                              msg->to.value, in.from.value, opt_.self.value));
  }
  {
    std::lock_guard lk(in.link->mu);
    if (in.link->generation != in.generation) {
      inc(streams_superseded_);
      spdlog::info("transport: node {} ends an older stream from node {} ({}): a newer one took over",
                   opt_.self.value, in.from.value, ctx->peer());
      return grpc::Status(StatusCode::ABORTED, "superseded by a newer stream from the same sender");
    }
    if (!gate_.enter()) return grpc::Status(StatusCode::CANCELLED, "transport stopping");
    struct Exit {
      CallbackGate& gate;
      ~Exit() { gate.exit(); }
    } exit{gate_};
    try {
      handler_(std::move(*msg));
    } catch (const std::exception& e) {
      // A handler must not throw; if it does, drop this stream (the sender reconnects) rather
      // than leave the reactor stuck or take the process down from a gRPC thread.
      spdlog::error("transport: node {}: message handler threw: {}", opt_.self.value, e.what());
      return grpc::Status(StatusCode::INTERNAL, "receiver failed to handle a message");
    }
  }
  inc(messages_received_);
  ++in.delivered;
  std::lock_guard lk(recv_mu_);
  ++received_from_[in.from];
  return std::nullopt;
}

std::optional<grpc::Status> GrpcTransport::Impl::on_batch(InboundStream& in, grpc::ByteBuffer& raw,
                                                          grpc::CallbackServerContext* ctx) {
  using grpc::StatusCode;
  inc(batches_received_);
  pb::Batch batch;
  if (auto st = grpc::SerializationTraits<pb::Batch>::Deserialize(&raw, &batch); !st.ok()) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                  "unparseable batch: " + st.error_message());
  }
  if (batch.cluster_id() != opt_.cluster_id) {
    return refuse(StatusCode::FAILED_PRECONDITION, refused_cluster_id_, ctx,
                  fmt::format("cluster id {:#x} does not match this cluster {:#x}",
                              batch.cluster_id(), opt_.cluster_id));
  }
  if (in.from == kNoNode) {
    if (batch.from() == 0 || batch.from() == opt_.self.value) {
      return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                    fmt::format("bad sender id {}", batch.from()));
    }
    in.from = NodeId(batch.from());
    {
      std::lock_guard lk(recv_mu_);
      auto& link = senders_[in.from];
      if (!link) link = std::make_shared<SenderLink>();
      in.link = link;
    }
    std::lock_guard lk(in.link->mu);
    in.generation = ++in.link->generation;
  } else if (batch.from() != in.from.value) {
    return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                  fmt::format("sender id changed from {} to {}", in.from.value, batch.from()));
  }

  const bool is_chunk = !batch.chunk().empty() || batch.total_size() != 0 || batch.last_chunk();
  if (!is_chunk) {
    if (in.in_chunk) {
      return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx, "messages inside a chunked message");
    }
    for (const auto& bytes : batch.messages()) {
      if (auto err = deliver(in, bytes, ctx)) return err;
    }
    return std::nullopt;
  }

  if (batch.messages_size() != 0) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx, "chunk and messages in one batch");
  }
  if (!in.in_chunk) {
    if (batch.chunk_offset() != 0 || batch.total_size() == 0 ||
        batch.total_size() > opt_.max_message_bytes) {
      return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                    fmt::format("bad first chunk: offset {} total {} (max_message_bytes {})",
                                batch.chunk_offset(), batch.total_size(), opt_.max_message_bytes));
    }
    in.in_chunk = true;
    in.total_size = batch.total_size();
    in.reassembly.clear();
    // total_size comes from the wire: grow with the data rather than trusting it up front.
    in.reassembly.reserve(std::min<uint64_t>(in.total_size, 8 * opt_.max_batch_bytes));
  }
  if (batch.total_size() != in.total_size || batch.chunk_offset() != in.reassembly.size() ||
      batch.chunk().size() > in.total_size - in.reassembly.size()) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                  fmt::format("chunk out of place: offset {} size {} total {}, have {} of {}",
                              batch.chunk_offset(), batch.chunk().size(), batch.total_size(),
                              in.reassembly.size(), in.total_size));
  }
  in.reassembly.append(batch.chunk());
  if (!batch.last_chunk()) return std::nullopt;
  if (in.reassembly.size() != in.total_size) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx, "last chunk before total size");
  }
  in.in_chunk = false;
  auto err = deliver(in, in.reassembly, ctx);
  std::string().swap(in.reassembly);
  return err;
}

// ---------------------------------------------------------------------------------------------
// Stats

TransportStats GrpcTransport::Impl::stats() const {
  TransportStats s;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, p] : peers_) {
      PeerLinkStats ps;
      ps.id = id;
      ps.address = p->address;
      ps.connected = p->connected.load();
      {
        std::lock_guard plk(p->mu);
        ps.queued_messages = p->queue.size();
      }
      ps.messages_sent = get(p->messages_sent);
      ps.batches_sent = get(p->batches_sent);
      ps.bytes_sent = get(p->bytes_sent);
      ps.chunks_sent = get(p->chunks_sent);
      ps.dropped_queue_full = get(p->dropped_queue_full);
      ps.dropped_send_failed = get(p->dropped_send_failed);
      ps.dropped_oversized = get(p->dropped_oversized);
      ps.connects = get(p->connects);
      ps.reconnects = ps.connects > 0 ? ps.connects - 1 : 0;
      ps.connect_failures = get(p->connect_failures);
      ps.streams_refused = get(p->streams_refused);
      s.peers.push_back(std::move(ps));
    }
  }
  {
    std::lock_guard lk(recv_mu_);
    s.received_from = received_from_;
  }
  s.messages_received = get(messages_received_);
  s.batches_received = get(batches_received_);
  s.streams_accepted = get(streams_accepted_);
  s.refused_cluster_id = get(refused_cluster_id_);
  s.refused_identity = get(refused_identity_);
  s.decode_errors = get(decode_errors_);
  s.dropped_unknown_peer = get(dropped_unknown_peer_);
  s.streams_superseded = get(streams_superseded_);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Facade

GrpcTransport::GrpcTransport(GrpcTransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
GrpcTransport::~GrpcTransport() { stop(); }
void GrpcTransport::start(Handler on_message) { impl_->start(std::move(on_message)); }
void GrpcTransport::add_peer(NodeId id, std::string address) { impl_->add_peer(id, std::move(address)); }
void GrpcTransport::remove_peer(NodeId id) { impl_->remove_peer(id); }
void GrpcTransport::send(std::vector<Message> msgs) { impl_->send(std::move(msgs)); }
void GrpcTransport::stop() { impl_->stop(); }
void GrpcTransport::set_feedback(DeliveryFeedback feedback) { impl_->set_feedback(std::move(feedback)); }
int GrpcTransport::listen_port() const { return impl_->listen_port(); }
TransportStats GrpcTransport::stats() const { return impl_->stats(); }

}  // namespace balsa
