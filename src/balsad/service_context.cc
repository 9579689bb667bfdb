#include "balsad/service_context.h"

namespace balsa::balsad {

grpc::Status to_grpc_status(NodeError e) {
  switch (e) {
    case NodeError::kOk: return grpc::Status::OK;
    case NodeError::kNotLeader:
    case NodeError::kNoLeader: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader"};
    case NodeError::kTimeout: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: request timed out"};
    case NodeError::kLeadershipLost: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: leader changed"};
    case NodeError::kDropped: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: too many requests"};
    case NodeError::kTooLarge: return {grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large"};
    case NodeError::kStopped: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: server stopped"};
  }
  return {grpc::StatusCode::UNKNOWN, "balsad: unknown node error"};
}

ReadPool::ReadPool(size_t threads) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

ReadPool::~ReadPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ReadPool::post(std::function<void()> f) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(f));
  }
  cv_.notify_one();
}

void ReadPool::run() {
  while (true) {
    std::function<void()> f;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      f = std::move(queue_.front());
      queue_.pop_front();
    }
    f();
  }
}

}  // namespace balsa::balsad
