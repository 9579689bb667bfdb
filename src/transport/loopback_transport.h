// An in-process Transport for runtime tests: several nodes in one process share a
// LoopbackNetwork; each node's LoopbackTransport delivers incoming messages on its own worker
// thread, in send order per sender. No sockets, no serialization (messages are copied as
// values). Links can be cut and healed to make partitions.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "transport/transport.h"

namespace balsa {

class LoopbackNetwork {
 public:
  // Cuts / heals the directed link from -> to. Messages on a cut link are dropped.
  void cut(NodeId from, NodeId to);
  void heal(NodeId from, NodeId to);
  void heal_all();
  // Cuts both directions between `id` and every other node (and heal_all undoes it).
  void isolate(NodeId id);

  uint64_t delivered() const;  // messages handed to an inbox
  uint64_t dropped() const;    // messages lost: no such node, node stopped, or link cut

 private:
  friend class LoopbackTransport;
  struct Inbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Message> queue;  // guarded by mu
    bool closed = false;        // guarded by mu; once set no message is queued
  };

  void attach(NodeId id, std::shared_ptr<Inbox> inbox);
  void detach(NodeId id);
  // False if the message was dropped (no such node, or the link is cut).
  bool deliver(NodeId from, Message msg);

  mutable std::mutex mu_;
  std::unordered_map<NodeId, std::shared_ptr<Inbox>> inboxes_;  // guarded by mu_
  std::set<std::pair<NodeId, NodeId>> cut_;                     // guarded by mu_
  std::set<NodeId> isolated_;                                   // guarded by mu_
  uint64_t delivered_ = 0;                                      // guarded by mu_
  uint64_t dropped_ = 0;                                        // guarded by mu_
};

class LoopbackTransport final : public Transport {
 public:
  // `self` must be unique within the network.
  LoopbackTransport(std::shared_ptr<LoopbackNetwork> network, NodeId self);
  ~LoopbackTransport() override;
  LoopbackTransport(const LoopbackTransport&) = delete;
  LoopbackTransport& operator=(const LoopbackTransport&) = delete;

  void start(Handler on_message) override;
  void add_peer(NodeId id, std::string address) override;  // address is ignored
  void remove_peer(NodeId id) override;
  void send(std::vector<Message> msgs) override;
  void stop() override;
  TransportStats stats() const override;

  uint64_t unknown_peer_dropped() const;

 private:
  void run();

  const std::shared_ptr<LoopbackNetwork> network_;
  const NodeId self_;
  const std::shared_ptr<LoopbackNetwork::Inbox> inbox_ = std::make_shared<LoopbackNetwork::Inbox>();
  Handler handler_;  // set by start(), read by the worker only

  mutable std::mutex mu_;
  std::map<NodeId, PeerLinkStats> peers_;  // guarded by mu_
  uint64_t unknown_peer_dropped_ = 0;  // guarded by mu_
  bool started_ = false;              // guarded by mu_
  bool stopped_ = false;              // guarded by mu_
  std::thread worker_;
  std::atomic<uint64_t> messages_received_{0};
};

}  // namespace balsa
