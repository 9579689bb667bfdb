#include "transport/loopback_transport.h"

#include "core/assert.h"

namespace balsa {

void LoopbackNetwork::cut(NodeId from, NodeId to) {
  std::lock_guard lk(mu_);
  cut_.emplace(from, to);
}

void LoopbackNetwork::heal(NodeId from, NodeId to) {
  std::lock_guard lk(mu_);
  cut_.erase({from, to});
}

void LoopbackNetwork::heal_all() {
  std::lock_guard lk(mu_);
  cut_.clear();
  isolated_.clear();
}

void LoopbackNetwork::isolate(NodeId id) {
  std::lock_guard lk(mu_);
  isolated_.insert(id);
}

uint64_t LoopbackNetwork::delivered() const {
  std::lock_guard lk(mu_);
  return delivered_;
}

uint64_t LoopbackNetwork::dropped() const {
  std::lock_guard lk(mu_);
  return dropped_;
}

void LoopbackNetwork::attach(NodeId id, std::shared_ptr<Inbox> inbox) {
  std::lock_guard lk(mu_);
  auto [it, inserted] = inboxes_.emplace(id, std::move(inbox));
  BALSA_ASSERT(inserted, "node {} attached twice to one LoopbackNetwork", id.value);
}

void LoopbackNetwork::detach(NodeId id) {
  std::lock_guard lk(mu_);
  inboxes_.erase(id);
}

bool LoopbackNetwork::deliver(NodeId from, Message msg) {
  std::shared_ptr<Inbox> inbox;
  {
    std::lock_guard lk(mu_);
    auto it = inboxes_.find(msg.to);
    if (it == inboxes_.end() || cut_.contains({from, msg.to}) || isolated_.contains(from) ||
        isolated_.contains(msg.to)) {
      ++dropped_;
      return false;
    }
    inbox = it->second;
    ++delivered_;
  }
  // Lock order: network mutex is released before the inbox mutex is taken.
  std::lock_guard lk(inbox->mu);
  if (inbox->closed) return false;
  inbox->queue.push_back(std::move(msg));
  inbox->cv.notify_one();
  return true;
}

LoopbackTransport::LoopbackTransport(std::shared_ptr<LoopbackNetwork> network, NodeId self)
    : network_(std::move(network)), self_(self) {}

LoopbackTransport::~LoopbackTransport() { stop(); }

void LoopbackTransport::start(Handler on_message) {
  std::lock_guard lk(mu_);
  BALSA_ASSERT(!started_, "LoopbackTransport::start called twice");
  started_ = true;
  handler_ = std::move(on_message);
  network_->attach(self_, inbox_);
  worker_ = std::thread([this] { run(); });
}

void LoopbackTransport::add_peer(NodeId id, std::string address) {
  std::lock_guard lk(mu_);
  auto& link = peers_[id];
  link.id = id;
  link.address = std::move(address);
  link.connected = true;
}

void LoopbackTransport::remove_peer(NodeId id) {
  std::lock_guard lk(mu_);
  peers_.erase(id);
}

void LoopbackTransport::send(std::vector<Message> msgs) {
  for (auto& m : msgs) {
    const NodeId to = m.to;
    {
      std::lock_guard lk(mu_);
      if (!started_ || stopped_ || !peers_.contains(to)) {
        ++unknown_peer_dropped_;
        continue;
      }
    }
    const bool delivered = network_->deliver(self_, std::move(m));
    std::lock_guard lk(mu_);
    auto it = peers_.find(to);
    if (it == peers_.end()) continue;
    ++(delivered ? it->second.messages_sent : it->second.dropped_send_failed);
  }
}

TransportStats LoopbackTransport::stats() const {
  TransportStats s;
  std::lock_guard lk(mu_);
  for (const auto& [id, link] : peers_) s.peers.push_back(link);
  s.messages_received = messages_received_.load();
  s.dropped_unknown_peer = unknown_peer_dropped_;
  return s;
}

void LoopbackTransport::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
    if (!started_) return;
  }
  network_->detach(self_);
  {
    std::lock_guard lk(inbox_->mu);
    inbox_->closed = true;
    inbox_->queue.clear();
    inbox_->cv.notify_all();
  }
  worker_.join();
}

uint64_t LoopbackTransport::unknown_peer_dropped() const {
  std::lock_guard lk(mu_);
  return unknown_peer_dropped_;
}

void LoopbackTransport::run() {
  std::deque<Message> batch;
  for (;;) {
    {
      std::unique_lock lk(inbox_->mu);
      inbox_->cv.wait(lk, [&] { return inbox_->closed || !inbox_->queue.empty(); });
      if (inbox_->closed) return;
      batch.swap(inbox_->queue);
    }
    for (auto& m : batch) {
      // Re-check between messages so that stop() is prompt even with a long backlog.
      {
        std::lock_guard lk(inbox_->mu);
        if (inbox_->closed) return;
      }
      handler_(std::move(m));
      messages_received_.fetch_add(1, std::memory_order_relaxed);
    }
    batch.clear();
  }
}

}  // namespace balsa
