// GrpcSender: the sending half of GrpcTransport (see grpc_transport.h): peers, the message
// writer of each. The snapshot thread of each peer is in grpc_snapshot_sender.cc.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/assert.h"
#include "core/codec.h"
#include "transport/grpc_transport_impl.h"

namespace balsa::grpc_internal {
namespace {

using namespace std::chrono_literals;

// Bytes a queued message counts for against max_queue_bytes (close to its encoded size).
size_t approx_bytes(const Message& m) {
  size_t n = 64 + m.context.size() + m.snapshot.data.size();
  for (const auto& e : m.entries) n += e.payload_bytes();
  return n;
}

// Protobuf framing of one `repeated bytes` entry: a 1-byte tag and a varint length (<= 5 bytes
// below 4 GiB).
constexpr size_t kEntryOverheadBytes = 6;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Peers

void GrpcSender::start() {
  std::lock_guard lk(mu_);
  started_ = true;
  for (auto& [id, p] : peers_) start_threads(p);
}

void GrpcSender::stop() {
  std::map<NodeId, std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
    peers.swap(peers_);
  }
  for (auto& [id, p] : peers) close_peer(*p);
}

void GrpcSender::add_peer(NodeId id, std::string address) {
  BALSA_ASSERT(id != s_.opt.self && id != kNoNode, "bad peer id {}", id.value);
  std::shared_ptr<Peer> old;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    auto it = peers_.find(id);
    if (it != peers_.end()) {
      if (it->second->address == address) return;
      old = it->second;
    }
    auto p = std::make_shared<Peer>(id, std::move(address), s_.opt.seed);
    peers_[id] = p;
    if (started_) start_threads(p);
  }
  if (old) close_peer(*old);
}

void GrpcSender::remove_peer(NodeId id) {
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

void GrpcSender::start_threads(const std::shared_ptr<Peer>& p) {
  p->writer = std::thread([this, p] { run_writer(*p); });
  if (s_.snapshots.open) p->snapshotter = std::thread([this, p] { run_snapshots(*p); });
}

void GrpcSender::close_peer(Peer& p) {
  {
    std::lock_guard lk(p.mu);
    p.closing = true;
    inc(p.dropped_send_failed, p.queue.size());
    p.queue.clear();
    p.queued_bytes = 0;
    p.snap_pending.reset();
    if (p.active_ctx) p.active_ctx->TryCancel();
    if (p.snap_ctx) p.snap_ctx->TryCancel();
    p.cv.notify_all();
    p.snap_cv.notify_all();
  }
  if (p.writer.joinable()) p.writer.join();
  if (p.snapshotter.joinable()) p.snapshotter.join();
}

void GrpcSender::report_snapshots(Peer& p, size_t n, bool ok) {
  if (!s_.feedback.snapshot_sent) return;
  for (size_t i = 0; i < n; ++i) s_.feedback.snapshot_sent(p.id, ok);
}

void GrpcSender::report_lost(Peer& p, size_t snaps_lost) {
  if (s_.feedback.unreachable) s_.feedback.unreachable(p.id);
  report_snapshots(p, snaps_lost, false);
}

void GrpcSender::report_refused_snapshots(Peer& p) {
  size_t n = 0;
  {
    std::lock_guard lk(p.mu);
    std::swap(n, p.snaps_dropped_unreported);
  }
  report_snapshots(p, n, false);
}

// ---------------------------------------------------------------------------------------------
// Messages

void GrpcSender::send(std::vector<Message> msgs) {
  std::lock_guard lk(mu_);
  for (auto& m : msgs) {
    auto it = peers_.find(m.to);
    if (it == peers_.end()) {
      inc(dropped_unknown_peer_);
      continue;
    }
    Peer& p = *it->second;
    std::lock_guard plk(p.mu);
    if (m.type == MessageType::kSnap && s_.snapshots.open) {
      // Streamed on the peer's snapshot connection. While a transfer runs, every kSnap is
      // absorbed: the core re-sends one it has not heard back about, maybe of a newer snapshot
      // taken meanwhile, and switching would restart a long transfer again and again. Once the
      // follower has installed the running one, the core sends a newer one if it still must.
      if (p.closing || p.snap_current) continue;
      if (p.snap_pending) ++p.snaps_dropped_unreported;  // replaced before it started
      p.snap_pending = std::move(m);
      p.snap_cv.notify_all();
      continue;
    }
    size_t bytes = approx_bytes(m);
    if (p.closing || p.queue.size() >= s_.opt.max_queue_messages ||
        (!p.queue.empty() && p.queued_bytes + bytes > s_.opt.max_queue_bytes)) {
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

std::shared_ptr<grpc::Channel> GrpcSender::make_channel(const Peer& p) const {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(static_cast<int>(s_.opt.max_grpc_message_bytes));
  args.SetMaxReceiveMessageSize(static_cast<int>(s_.opt.max_grpc_message_bytes));
  // Our own loop owns reconnection: a private subchannel per attempt, so that no shared
  // subchannel sits in gRPC's own (longer) backoff when we retry.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(s_.opt.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(s_.opt.backoff_initial.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(s_.opt.backoff_max.count()));
  // Notice a dead peer on an idle link.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (s_.opt.tls && !s_.opt.tls->server_name_override.empty()) {
    args.SetSslTargetNameOverride(s_.opt.tls->server_name_override);
  }
  return grpc::CreateCustomChannel(p.address, s_.channel_creds, args);
}

bool GrpcSender::wait_connected(Peer& p, grpc::Channel& channel) {
  const auto deadline = Clock::now() + s_.opt.connect_timeout;
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

bool GrpcSender::sleep_backoff(Peer& p, Rng& rng, std::condition_variable& cv,
                               std::chrono::milliseconds* delay) {
  auto half = delay->count() / 2;
  auto wait = std::chrono::milliseconds(half + static_cast<int64_t>(rng.below(half + 1)));
  *delay = std::min(*delay * 2, s_.opt.backoff_max);
  std::unique_lock lk(p.mu);
  return !cv.wait_for(lk, wait, [&] { return p.closing; });
}

void GrpcSender::run_writer(Peer& p) {
  std::chrono::milliseconds delay = s_.opt.backoff_initial;
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
      if (s_.feedback.unreachable) s_.feedback.unreachable(p.id);
      report_refused_snapshots(p);
      if (auto n = s_.connect_log.allow(); n >= 0) {
        spdlog::warn("transport: node {} cannot connect to peer {} at {} (retrying; {} similar "
                     "messages suppressed)", s_.opt.self.value, p.id.value, p.address, n);
      }
      sleep_backoff(p, p.rng, p.cv, &delay);
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
    spdlog::info("transport: node {} connected to peer {} at {}", s_.opt.self.value, p.id.value,
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
      if (auto n = s_.refuse_log.allow(); n >= 0) {
        spdlog::error("transport: peer {} at {} refused node {}'s stream: {} ({} similar messages "
                      "suppressed)", p.id.value, p.address, s_.opt.self.value, st.error_message(), n);
      }
    } else {
      delay = s_.opt.backoff_initial;  // the link worked and broke: retry soon
      spdlog::info("transport: node {} disconnected from peer {} at {}: {}", s_.opt.self.value,
                   p.id.value, p.address, st.ok() ? std::string("ok") : st.error_message());
    }
    sleep_backoff(p, p.rng, p.cv, &delay);
  }
}

bool GrpcSender::pump(Peer& p, grpc::ClientWriter<pb::Batch>& stream, grpc::Channel& channel) {
  std::deque<Message> work;
  pb::Batch batch;
  size_t batch_bytes = 0;
  size_t batch_msgs = 0;
  size_t batch_snaps = 0;  // kSnap messages in `batch`

  auto fresh_batch = [&] {
    batch.Clear();
    batch.set_cluster_id(s_.opt.cluster_id);
    batch.set_from(s_.opt.self.value);
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
    const size_t chunk_bytes = s_.opt.max_batch_bytes;
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
      if (enc.size() > s_.opt.max_message_bytes) {
        work.pop_front();
        inc(p.dropped_oversized);
        if (is_snap) report_snapshots(p, 1, false);
        if (auto n = s_.refuse_log.allow(); n >= 0) {
          spdlog::error("transport: node {} dropped a {} message of {} bytes to peer {} "
                        "(max_message_bytes {}; {} similar messages suppressed)",
                        s_.opt.self.value, to_string(type), enc.size(), p.id.value,
                        s_.opt.max_message_bytes, n);
        }
        continue;
      }
      if (enc.size() + kEntryOverheadBytes > s_.opt.max_batch_bytes) {
        if (!flush()) return false;
        work.pop_front();
        if (!send_chunked(enc, is_snap)) return false;
        continue;
      }
      // Count each entry's protobuf framing too (tag + length varint), so that a batch of many
      // tiny messages also stays under the cap.
      const size_t framed = enc.size() + kEntryOverheadBytes;
      if (batch_bytes + framed > s_.opt.max_batch_bytes && !flush()) return false;
      work.pop_front();
      batch_bytes += framed;
      ++batch_msgs;
      if (is_snap) ++batch_snaps;
      batch.add_messages(std::move(enc));
    }
    if (!flush()) return false;
  }
}

void GrpcSender::fill_stats(TransportStats* s) const {
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
    ps.snapshots_sent = get(p->snapshots_sent);
    ps.snapshots_failed = get(p->snapshots_failed);
    ps.snapshot_bytes_sent = get(p->snapshot_bytes_sent);
    ps.snapshot_connects = get(p->snapshot_connects);
    ps.snapshot_resumes = get(p->snapshot_resumes);
    ps.snapshot_chunks_refused = get(p->snapshot_chunks_refused);
    s->peers.push_back(std::move(ps));
  }
  s->dropped_unknown_peer = get(dropped_unknown_peer_);
}

}  // namespace balsa::grpc_internal
