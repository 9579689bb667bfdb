// GrpcReceiver: the receiving half of GrpcTransport (see grpc_transport.h and snapshot_stream.h).
#include <spdlog/spdlog.h>

#include "core/codec.h"
#include "transport/grpc_transport_impl.h"

namespace balsa::grpc_internal {

grpc::Status GrpcReceiver::refuse(grpc::StatusCode code, std::atomic<uint64_t>& counter,
                                         grpc::CallbackServerContext* ctx, const std::string& why) {
  inc(counter);
  if (auto n = s_.refuse_log.allow(); n >= 0) {
    spdlog::error("transport: node {} closed stream from {}: {} ({} similar messages suppressed)",
                  s_.opt.self.value, ctx->peer(), why, n);
  }
  return grpc::Status(code, why);
}

class GrpcReceiver::Reactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  Reactor(GrpcReceiver* impl, grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response)
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
  GrpcReceiver* const impl_;
  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer buf_;
  InboundStream in_;
};

grpc::ServerReadReactor<grpc::ByteBuffer>* GrpcReceiver::Stream(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response) {
  inc(streams_accepted_);
  reactor_started();
  return new Reactor(this, ctx, response);
}

void GrpcReceiver::reactor_started() {
  std::lock_guard lk(mu_);
  ++live_reactors_;
}

void GrpcReceiver::wait_reactors() {
  std::unique_lock lk(mu_);
  reactors_done_cv_.wait(lk, [&] { return live_reactors_ == 0; });
}

void GrpcReceiver::reactor_done() {
  std::lock_guard lk(mu_);
  if (--live_reactors_ == 0) reactors_done_cv_.notify_all();
}

std::optional<grpc::Status> GrpcReceiver::deliver(InboundStream& in, std::string_view bytes,
                                                         grpc::CallbackServerContext* ctx) {
  using grpc::StatusCode;
  auto msg = codec::decode<Message>(bytes);
  if (!msg) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                  fmt::format("undecodable message of {} bytes from node {}", bytes.size(), in.from.value));
  }
  if (msg->from != in.from || msg->to != s_.opt.self) {
    return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                  fmt::format("message {}->{} on a stream from node {} to node {}", msg->from.value,
                              msg->to.value, in.from.value, s_.opt.self.value));
  }
  {
    std::lock_guard lk(in.link->mu);
    if (in.link->generation != in.generation) {
      inc(streams_superseded_);
      spdlog::info("transport: node {} ends an older stream from node {} ({}): a newer one took over",
                   s_.opt.self.value, in.from.value, ctx->peer());
      return grpc::Status(StatusCode::ABORTED, "superseded by a newer stream from the same sender");
    }
    if (auto err = hand_over(std::move(*msg))) return err;
  }
  inc(messages_received_);
  ++in.delivered;
  std::lock_guard lk(mu_);
  ++received_from_[in.from];
  return std::nullopt;
}

std::optional<grpc::Status> GrpcReceiver::on_batch(InboundStream& in, grpc::ByteBuffer& raw,
                                                          grpc::CallbackServerContext* ctx) {
  using grpc::StatusCode;
  inc(batches_received_);
  pb::Batch batch;
  if (auto st = grpc::SerializationTraits<pb::Batch>::Deserialize(&raw, &batch); !st.ok()) {
    return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                  "unparseable batch: " + st.error_message());
  }
  if (batch.cluster_id() != s_.opt.cluster_id) {
    return refuse(StatusCode::FAILED_PRECONDITION, refused_cluster_id_, ctx,
                  fmt::format("cluster id {:#x} does not match this cluster {:#x}",
                              batch.cluster_id(), s_.opt.cluster_id));
  }
  if (in.from == kNoNode) {
    if (batch.from() == 0 || batch.from() == s_.opt.self.value) {
      return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                    fmt::format("bad sender id {}", batch.from()));
    }
    in.from = NodeId(batch.from());
    {
      std::lock_guard lk(mu_);
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
        batch.total_size() > s_.opt.max_message_bytes) {
      return refuse(StatusCode::INVALID_ARGUMENT, decode_errors_, ctx,
                    fmt::format("bad first chunk: offset {} total {} (max_message_bytes {})",
                                batch.chunk_offset(), batch.total_size(), s_.opt.max_message_bytes));
    }
    in.in_chunk = true;
    in.total_size = batch.total_size();
    in.reassembly.clear();
    // total_size comes from the wire: grow with the data rather than trusting it up front.
    in.reassembly.reserve(std::min<uint64_t>(in.total_size, 8 * s_.opt.max_batch_bytes));
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

std::optional<grpc::Status> GrpcReceiver::hand_over(Message msg) {
  if (!s_.gate.enter()) return grpc::Status(grpc::StatusCode::CANCELLED, "transport stopping");
  struct Exit {
    CallbackGate& gate;
    ~Exit() { gate.exit(); }
  } exit{s_.gate};
  try {
    s_.handler(std::move(msg));
  } catch (const std::exception& e) {
    // A handler must not throw; if it does, drop this stream (the sender reconnects) rather
    // than leave the reactor stuck or take the process down from a gRPC thread.
    spdlog::error("transport: node {}: message handler threw: {}", s_.opt.self.value, e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, "receiver failed to handle a message");
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Snapshot transfers: read a frame, hand it to the SnapshotReceiver (which writes it to disk),
// write the ack, read the next. One frame at a time per call; the sender keeps a window of
// chunks in flight, so the link stays busy while a chunk is written.

class GrpcReceiver::SnapshotReactor final : public grpc::ServerBidiReactor<pb::SnapshotFrame, pb::SnapshotAck> {
 public:
  SnapshotReactor(GrpcReceiver* r, grpc::CallbackServerContext* ctx) : r_(r), ctx_(ctx) { StartRead(&frame_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the sender is done (or gone)
      Finish(grpc::Status::OK);
      return;
    }
    if (auto err = r_->on_snapshot_frame(&from_, frame_, &ack_, ctx_)) {
      Finish(*err);
      return;
    }
    StartWrite(&ack_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "snapshot ack not written"));
      return;
    }
    StartRead(&frame_);
  }
  void OnDone() override {
    r_->reactor_done();  // last touch of r_
    delete this;
  }

 private:
  GrpcReceiver* const r_;
  grpc::CallbackServerContext* const ctx_;
  pb::SnapshotFrame frame_;
  pb::SnapshotAck ack_;
  NodeId from_ = kNoNode;  // fixed by the offer
};

grpc::ServerBidiReactor<pb::SnapshotFrame, pb::SnapshotAck>* GrpcReceiver::SnapshotService::Transfer(
    grpc::CallbackServerContext* ctx) {
  inc(r_.snapshot_calls_);
  r_.reactor_started();
  return new SnapshotReactor(&r_, ctx);
}

std::optional<grpc::Status> GrpcReceiver::on_snapshot_frame(NodeId* from, const pb::SnapshotFrame& f,
                                                             pb::SnapshotAck* ack, grpc::CallbackServerContext* ctx) {
  using grpc::StatusCode;
  SnapshotReceiver* rx = s_.snapshots.receiver;
  if (rx == nullptr) {
    return refuse(StatusCode::UNIMPLEMENTED, decode_errors_, ctx, "this node does not take streamed snapshots");
  }
  if (f.cluster_id() != s_.opt.cluster_id) {
    return refuse(StatusCode::FAILED_PRECONDITION, refused_cluster_id_, ctx,
                  fmt::format("cluster id {:#x} does not match this cluster {:#x}", f.cluster_id(), s_.opt.cluster_id));
  }
  SnapshotAck a;
  if (*from == kNoNode) {  // the offer
    auto msg = codec::decode<Message>(f.offer_message());
    if (f.from() == 0 || f.from() == s_.opt.self.value || !msg || msg->from.value != f.from() ||
        msg->to != s_.opt.self || msg->type != MessageType::kSnap) {
      return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                    fmt::format("bad snapshot offer from node {}", f.from()));
    }
    *from = NodeId(f.from());
    const SnapshotMetadata md = msg->snapshot.metadata;
    a = rx->offer(*from, SnapshotOffer{std::move(*msg), f.file_bytes()});
    if (a.verdict == SnapshotVerdict::kOk) {
      spdlog::info("transport: node {} {} snapshot {}/{} ({} bytes) from node {}{}", s_.opt.self.value,
                   a.offset > 0 ? "resumes" : "receives", md.index.value, md.term.value, f.file_bytes(),
                   from->value, a.offset > 0 ? fmt::format(" at byte {}", a.offset) : std::string());
    }
  } else {
    if (f.from() != from->value) {
      return refuse(StatusCode::INVALID_ARGUMENT, refused_identity_, ctx,
                    fmt::format("sender id changed from {} to {}", from->value, f.from()));
    }
    SnapshotChunk c;
    c.term = Term{f.term()};
    c.offset = f.offset();
    c.data = f.data();
    c.crc = f.crc();
    Message deliver;
    a = rx->chunk(*from, c, &deliver);
    if (a.verdict == SnapshotVerdict::kDone) {
      inc(snapshots_delivered_);
      if (auto err = hand_over(std::move(deliver))) return err;
      inc(messages_received_);
      std::lock_guard lk(mu_);
      ++received_from_[*from];
    }
  }
  if (a.verdict != SnapshotVerdict::kOk && a.verdict != SnapshotVerdict::kDone) {
    if (auto n = s_.refuse_log.allow(); n >= 0) {
      spdlog::warn("transport: node {} refused snapshot {} from node {}: {} (holds {} bytes; {} similar messages "
                   "suppressed)", s_.opt.self.value, *from == kNoNode ? "offer" : "chunk", from->value,
                   to_string(a.verdict), a.offset, n);
    }
  }
  ack->set_verdict(static_cast<uint32_t>(a.verdict));
  ack->set_offset(a.offset);
  return std::nullopt;
}

void GrpcReceiver::fill_stats(TransportStats* s) const {
  {
    std::lock_guard lk(mu_);
    s->received_from = received_from_;
  }
  s->messages_received = get(messages_received_);
  s->batches_received = get(batches_received_);
  s->streams_accepted = get(streams_accepted_);
  s->refused_cluster_id = get(refused_cluster_id_);
  s->refused_identity = get(refused_identity_);
  s->decode_errors = get(decode_errors_);
  s->streams_superseded = get(streams_superseded_);
  s->snapshot_calls_accepted = get(snapshot_calls_);
  s->snapshots_received = get(snapshots_delivered_);
}

}  // namespace balsa::grpc_internal
