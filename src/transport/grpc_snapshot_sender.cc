// GrpcSender's snapshot thread (one per peer): streams each kSnap's file on a
// RaftSnapshot.Transfer call of its own, windowed, rate-limited, resumed after a dropped
// connection (see snapshot_stream.h for the protocol).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/codec.h"
#include "transport/grpc_transport_impl.h"

namespace balsa::grpc_internal {

bool GrpcSender::snapshot_superseded(Peer& p, const SnapshotMetadata& md) {
  std::lock_guard lk(p.mu);
  return p.snap_pending && !(p.snap_pending->snapshot.metadata == md);
}

void GrpcSender::run_snapshots(Peer& p) {
  const SnapshotStreamOptions& so = s_.opt.snapshot;
  RateLimiter limiter(so.rate_bytes_per_sec, so.chunk_bytes);
  for (;;) {
    Message msg;
    {
      std::unique_lock lk(p.mu);
      p.snap_cv.wait(lk, [&] { return p.closing || p.snap_pending; });
      if (p.closing) return;
      msg = std::move(*p.snap_pending);
      p.snap_pending.reset();
      p.snap_current = msg.snapshot.metadata;
    }
    report_refused_snapshots(p);
    const SnapshotMetadata md = msg.snapshot.metadata;
    bool ok = false;
    try {
      SnapshotSendSession session(std::move(msg), s_.snapshots.open(md), so.chunk_bytes, s_.opt.snapshot_bug);
      spdlog::info("transport: node {} streams snapshot {}/{} ({} bytes) to peer {}", s_.opt.self.value,
                   md.index.value, md.term.value, session.file_bytes(), p.id.value);
      std::chrono::milliseconds delay = s_.opt.backoff_initial;
      const auto t0 = Clock::now();
      const uint64_t written0 = get(p.snapshot_bytes_sent);
      for (int attempt = 1;; ++attempt) {
        const TransferEnd end = transfer_once(p, session, limiter);
        if (end == TransferEnd::kDone) {
          ok = true;
          const double s = std::chrono::duration<double>(Clock::now() - t0).count();
          spdlog::info("transport: node {} sent snapshot {}/{} to peer {}: {} bytes in {:.2f} s ({:.1f} MB/s, "
                       "{} connection(s), {} bytes written)", s_.opt.self.value, md.index.value, md.term.value,
                       p.id.value, session.file_bytes(), s,
                       static_cast<double>(session.file_bytes()) / 1e6 / std::max(s, 1e-9), attempt,
                       get(p.snapshot_bytes_sent) - written0);
          break;
        }
        if (end == TransferEnd::kClosing) return;
        if (end == TransferEnd::kSuperseded || attempt >= so.max_attempts) break;
        spdlog::info("transport: node {} snapshot {}/{} to peer {} interrupted at byte {} ({}); resuming",
                     s_.opt.self.value, md.index.value, md.term.value, p.id.value, session.position(),
                     end == TransferEnd::kRefused ? "refused" : "link broke");
        if (!sleep_backoff(p, p.snap_rng, p.snap_cv, &delay)) return;
        if (snapshot_superseded(p, md)) break;
      }
    } catch (const std::exception& e) {
      spdlog::error("transport: node {} cannot stream snapshot {}/{} to peer {}: {}", s_.opt.self.value,
                    md.index.value, md.term.value, p.id.value, e.what());
    }
    {
      std::lock_guard lk(p.mu);
      p.snap_current.reset();
      if (p.closing) return;
    }
    inc(ok ? p.snapshots_sent : p.snapshots_failed);
    report_snapshots(p, 1, ok);
  }
}

GrpcSender::TransferEnd GrpcSender::transfer_once(Peer& p, SnapshotSendSession& session, RateLimiter& limiter) {
  const SnapshotStreamOptions& so = s_.opt.snapshot;
  auto channel = make_channel(p);  // a private subchannel: a TCP connection of its own
  if (!wait_connected(p, *channel)) {
    std::lock_guard lk(p.mu);
    return p.closing ? TransferEnd::kClosing : TransferEnd::kBroken;
  }
  auto stub = pb::RaftSnapshot::NewStub(channel);
  grpc::ClientContext ctx;
  {
    std::lock_guard lk(p.mu);
    if (p.closing) return TransferEnd::kClosing;
    p.snap_ctx = &ctx;
  }
  struct Unregister {
    Peer& p;
    ~Unregister() {
      std::lock_guard lk(p.mu);
      p.snap_ctx = nullptr;
    }
  } unregister{p};
  auto stream = stub->Transfer(&ctx);
  inc(p.snapshot_connects);
  auto end = [&](TransferEnd e) {
    ctx.TryCancel();
    stream->Finish();
    std::lock_guard lk(p.mu);
    return p.closing ? TransferEnd::kClosing : e;
  };

  pb::SnapshotFrame frame;
  frame.set_cluster_id(s_.opt.cluster_id);
  frame.set_from(s_.opt.self.value);
  frame.set_offer_message(codec::encode(session.message()));
  frame.set_file_bytes(session.file_bytes());
  pb::SnapshotAck ack;
  if (!stream->Write(frame) || !stream->Read(&ack)) return end(TransferEnd::kBroken);
  if (static_cast<SnapshotVerdict>(ack.verdict()) != SnapshotVerdict::kOk) {
    inc(p.snapshot_chunks_refused);
    spdlog::warn("transport: peer {} refused node {}'s snapshot offer: {}", p.id.value, s_.opt.self.value,
                 to_string(static_cast<SnapshotVerdict>(ack.verdict())));
    return end(TransferEnd::kRefused);
  }
  if (ack.offset() > 0) inc(p.snapshot_resumes);
  session.resume_at(ack.offset());

  size_t inflight = 0;  // chunks written, not yet acknowledged: at most window_chunks
  bool done = false;
  std::optional<TransferEnd> failed;
  auto read_ack = [&] {
    if (!stream->Read(&ack)) {
      failed = TransferEnd::kBroken;
      return;
    }
    --inflight;
    const auto v = static_cast<SnapshotVerdict>(ack.verdict());
    if (v == SnapshotVerdict::kDone) {
      done = true;
    } else if (v != SnapshotVerdict::kOk) {
      inc(p.snapshot_chunks_refused);
      if (auto n = s_.refuse_log.allow(); n >= 0) {
        spdlog::warn("transport: peer {} refused a snapshot chunk from node {}: {} (it holds {} bytes; {} similar "
                     "messages suppressed)", p.id.value, s_.opt.self.value, to_string(v), ack.offset(), n);
      }
      failed = TransferEnd::kRefused;
    }
  };
  SnapshotChunk chunk;
  const size_t window = std::max<size_t>(so.window_chunks, 1);
  while (!session.all_sent() && !done) {
    {
      std::unique_lock lk(p.mu);
      if (p.closing) return end(TransferEnd::kClosing);
      if (p.snap_pending && !(p.snap_pending->snapshot.metadata == session.message().snapshot.metadata))
        return end(TransferEnd::kSuperseded);
      const uint64_t n = std::min<uint64_t>(so.chunk_bytes, session.file_bytes() - session.position());
      const auto wait = limiter.reserve(n, Clock::now());
      if (wait.count() > 0 && p.snap_cv.wait_for(lk, wait, [&] { return p.closing; }))
        return end(TransferEnd::kClosing);
    }
    session.next_chunk(&chunk);
    frame.Clear();
    frame.set_cluster_id(s_.opt.cluster_id);
    frame.set_from(s_.opt.self.value);
    frame.set_term(chunk.term.value);
    frame.set_offset(chunk.offset);
    frame.set_crc(chunk.crc);
    const size_t n = chunk.data.size();
    frame.mutable_data()->swap(chunk.data);
    const bool wrote = stream->Write(frame);
    frame.mutable_data()->swap(chunk.data);  // the buffer is reused for the next chunk
    if (!wrote) return end(TransferEnd::kBroken);
    ++inflight;
    inc(p.snapshot_bytes_sent, n);
    while (inflight >= window && !failed && !done) read_ack();
    if (failed) return end(*failed);
  }
  while (inflight > 0 && !failed && !done) read_ack();
  if (failed) return end(*failed);
  if (!done) return end(TransferEnd::kBroken);
  stream->WritesDone();
  stream->Finish();
  return TransferEnd::kDone;
}

}  // namespace balsa::grpc_internal
