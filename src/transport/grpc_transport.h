// The production Transport: gRPC client streams between nodes.
//
// Shape of one link (this node -> peer P):
//   send() --> P's bounded queue --> P's writer thread --> one long-lived RaftPeer.Stream call
//   --> P's server, which checks and decodes each message and calls P's handler.
// Each peer has exactly one writer thread and one outgoing stream. The writer drains everything
// queued into Batches of at most max_batch_bytes, and never holds a lock across a gRPC call.
// A message whose encoding exceeds max_batch_bytes (an InstallSnapshot, typically) is split into
// chunks, sent consecutively on the same stream and reassembled by the receiver, so per-link
// order is kept. When the link breaks the writer reconnects with jittered exponential backoff;
// messages queued meanwhile wait (up to the queue bound) and messages in a failed write are lost.
//
// The receiving side refuses, counts and closes:
//   cluster id mismatch                          -> FAILED_PRECONDITION, refused_cluster_id
//   unparseable Batch / undecodable message / bad chunk -> INVALID_ARGUMENT, decode_errors
//   from/to not matching the link                -> INVALID_ARGUMENT,    refused_identity
//   an older stream of a sender that has a newer one -> ABORTED,        streams_superseded
// Only that stream is closed; the server keeps serving every other peer.
// docs/transport.md has the whole picture.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport/snapshot_stream.h"
#include "transport/transport.h"

namespace balsa {

struct GrpcTransportTls {
  std::string ca_file;    // PEM roots used to verify the other side
  std::string cert_file;  // PEM certificate chain of this node (server and client)
  std::string key_file;   // PEM private key of this node
  bool require_client_cert = true;  // mutual TLS: the server verifies the client certificate
  // Name checked against the server's certificate instead of the host part of the address
  // (for certificates issued to a node name rather than its IP). Empty: use the address.
  std::string server_name_override;
};

struct GrpcTransportOptions {
  NodeId self;
  uint64_t cluster_id = 0;
  std::string listen_address = "127.0.0.1:0";  // port 0 picks a free port; see listen_port()

  // Largest gRPC message (one Batch) either side accepts.
  size_t max_grpc_message_bytes = 16u << 20;
  // Payload cap of one Batch; larger messages are chunked. Must leave room under the gRPC limit.
  size_t max_batch_bytes = 1u << 20;
  // Largest single Raft message (after reassembly). Larger ones are dropped by the sender and
  // refused by the receiver. Streamed snapshots (set_snapshots) do not pass through here and
  // have no size limit; only a kSnap sent inline (no endpoints installed) does.
  size_t max_message_bytes = 512u << 20;

  // Streamed snapshots: chunk size, window, rate limit (bytes/s), attempts per transfer.
  SnapshotStreamOptions snapshot;
  SnapshotStreamBug snapshot_bug = SnapshotStreamBug::kNone;  // planted defects, tests only

  // Per-peer queue bound. A message that does not fit is dropped and counted; send() never
  // blocks. A single message larger than max_queue_bytes is still admitted into an empty queue.
  size_t max_queue_messages = 4096;
  size_t max_queue_bytes = 64u << 20;

  // Reconnect backoff: the delay starts at backoff_initial, doubles per failed attempt up to
  // backoff_max, and each wait is drawn uniformly from [delay/2, delay] with an Rng seeded from
  // `seed` and the peer id (deterministic given the seed).
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  // How long one connection attempt may take (TCP + TLS handshake) before it counts as failed.
  // A refused connection fails at once; this bounds attempts into a black hole.
  std::chrono::milliseconds connect_timeout{5000};
  uint64_t seed = 1;

  std::optional<GrpcTransportTls> tls;  // insecure (plaintext) when empty
};

class GrpcTransport final : public Transport {
 public:
  explicit GrpcTransport(GrpcTransportOptions options);
  ~GrpcTransport() override;
  GrpcTransport(const GrpcTransport&) = delete;
  GrpcTransport& operator=(const GrpcTransport&) = delete;

  // Throws std::runtime_error if the listen address cannot be bound or TLS files cannot be read.
  void start(Handler on_message) override;
  void add_peer(NodeId id, std::string address) override;
  void remove_peer(NodeId id) override;
  void send(std::vector<Message> msgs) override;
  void stop() override;
  // unreachable: on a failed connection attempt and when a broken write loses messages.
  // snapshot_sent: once per kSnap message, after its last byte is written (ok) or when it is
  // lost to a full queue, an oversize refusal or a broken link (!ok).
  void set_feedback(DeliveryFeedback feedback) override;
  // With endpoints, each kSnap is streamed on a connection of its own per peer (one transfer
  // at a time, the newest snapshot replacing an older one not yet started), rate-limited,
  // resumed after a dropped connection; snapshot_sent reports the receiver's confirmation.
  bool set_snapshots(SnapshotEndpoints endpoints) override;

  // The port the server listens on, valid after start().
  int listen_port() const;
  TransportStats stats() const override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace balsa
