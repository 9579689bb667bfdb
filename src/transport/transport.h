// The peer transport seen by the node runtime: hand it Raft messages, get Raft messages back.
//
// Implementations: GrpcTransport (real sockets, src/transport/grpc_transport.h),
// LoopbackTransport (in-process, for runtime tests) and the deterministic simulator's network.
// The interface carries no gRPC types so that all three fit behind it.
//
// Contract shared by every implementation:
//  - Delivery is best effort: messages may be dropped (queue full, peer down, link cut), but
//    messages from one sender to one receiver that do arrive, arrive in send order. Raft
//    tolerates loss; it does not tolerate reordering within what a follower acknowledges.
//  - send() never blocks on the network; it queues and returns.
//  - The handler runs on transport threads, possibly several at once (one per sending peer).
//    It must not block for long and must not call stop().
//  - After stop() returns no handler call is running or will start. stop() is idempotent and
//    the destructor of every implementation calls it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/types.h"

namespace balsa {

class SnapshotFileReader;
class SnapshotReceiver;

// Counters for one outgoing link. Monotonic except `connected` and `queued_messages`.
// Implementations fill what applies to them and leave the rest zero.
struct PeerLinkStats {
  NodeId id;
  std::string address;
  bool connected = false;
  uint64_t queued_messages = 0;
  uint64_t messages_sent = 0;    // handed to the link (a chunked message counts once)
  uint64_t batches_sent = 0;     // writes to the link (gRPC: Batches, chunks included)
  uint64_t bytes_sent = 0;       // message bytes written, with their protobuf framing
  uint64_t chunks_sent = 0;
  uint64_t dropped_queue_full = 0;
  uint64_t dropped_send_failed = 0;  // lost on a broken/cut link, or queued when the peer was removed
  uint64_t dropped_oversized = 0;    // encoding larger than max_message_bytes
  uint64_t connects = 0;             // streams opened
  uint64_t reconnects = 0;           // connects after the first
  uint64_t connect_failures = 0;
  uint64_t streams_refused = 0;      // the peer ended our stream with an error status
  // Streamed snapshots (snapshot_stream.h), on their own connection.
  uint64_t snapshots_sent = 0;           // transfers the receiver confirmed complete
  uint64_t snapshots_failed = 0;         // transfers given up (reported lost to the core)
  uint64_t snapshot_bytes_sent = 0;      // file bytes written, resent ones included
  uint64_t snapshot_connects = 0;        // connections opened for transfers
  uint64_t snapshot_resumes = 0;         // connections that went on from a non-zero offset
  uint64_t snapshot_chunks_refused = 0;  // acks refusing a chunk or an offer
};

// What a transport needs to stream snapshots (src/transport/snapshot_stream.h). When set, a
// kSnap message handed to send() carries metadata only: the transport streams the file of that
// snapshot from `open` on a path apart from other messages, and on the receiving side feeds the
// chunks to `receiver`, delivering the kSnap to the handler once the file is in and verified.
struct SnapshotEndpoints {
  // Leader: opens the file of the snapshot for streaming; throws if the store no longer has it.
  // Called on transport threads.
  std::function<std::unique_ptr<SnapshotFileReader>(const SnapshotMetadata&)> open;
  // Follower: takes incoming transfers; must outlive stop().
  SnapshotReceiver* receiver = nullptr;
};

struct TransportStats {
  std::vector<PeerLinkStats> peers;  // ordered by id
  std::map<NodeId, uint64_t> received_from;  // good messages handed to the handler, by sender
  uint64_t messages_received = 0;            // handed to the handler
  uint64_t batches_received = 0;
  uint64_t streams_accepted = 0;
  uint64_t refused_cluster_id = 0;
  uint64_t refused_identity = 0;
  uint64_t decode_errors = 0;
  uint64_t dropped_unknown_peer = 0;  // send() to an id that is not a peer
  uint64_t streams_superseded = 0;    // older streams ended because the sender opened a new one
  uint64_t snapshot_calls_accepted = 0;  // snapshot transfer connections (resumes included)
  uint64_t snapshots_received = 0;       // transfers completed and handed to the handler
};

// Delivery feedback for the Raft core (RawNode::report_unreachable / report_snapshot). Both
// members are optional. They run on transport threads, never inside send(); they must be quick
// and must not call stop(). Implementations that cannot tell never call them.
struct DeliveryFeedback {
  // Messages to `peer` were lost because the link is down or broke.
  std::function<void(NodeId peer)> unreachable;
  // A kSnap message to `peer` was handed in full to the link (ok; not yet a proof of receipt)
  // or was lost (!ok).
  std::function<void(NodeId peer, bool ok)> snapshot_sent;
};

class Transport {
 public:
  using Handler = std::function<void(Message)>;

  virtual ~Transport() = default;

  // Begins listening and connecting to peers added so far. Called once.
  virtual void start(Handler on_message) = 0;
  // Adds (or re-addresses) a peer. `address` is "host:port". May be called before or after start.
  virtual void add_peer(NodeId id, std::string address) = 0;
  // Forgets a peer: its queue is dropped and its connection closed.
  virtual void remove_peer(NodeId id) = 0;
  // Queues messages; msg.to picks the peer. Messages to unknown peers are dropped and counted.
  virtual void send(std::vector<Message> msgs) = 0;
  // Closes everything and joins the transport's threads.
  virtual void stop() = 0;
  // Installs delivery feedback; call before start(). The default ignores it.
  virtual void set_feedback(DeliveryFeedback feedback) { (void)feedback; }
  // Installs snapshot streaming; call before start(). Returns false if this transport does not
  // stream: then kSnap messages must carry their image inline (the default).
  virtual bool set_snapshots(SnapshotEndpoints endpoints) {
    (void)endpoints;
    return false;
  }
  // A snapshot of the counters, for metrics. Thread-safe. The default reports nothing.
  virtual TransportStats stats() const { return {}; }
};

}  // namespace balsa
