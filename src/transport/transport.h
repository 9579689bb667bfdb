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

#include <functional>
#include <string>
#include <vector>

#include "core/types.h"

namespace balsa {

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
};

}  // namespace balsa
