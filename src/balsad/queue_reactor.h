// A unary reactor for a call that waits in a KeyQueue (Lock, Campaign): a client that cancels
// or goes away cancels the acquisition (its key is removed), and the reactor frees itself when
// gRPC is done with it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>

#include "balsad/key_queue.h"

namespace balsa::balsad {

class QueueReactor final : public grpc::ServerUnaryReactor {
 public:
  void set_queue(std::shared_ptr<KeyQueue> q) {
    std::lock_guard lk(mu_);
    queue_ = std::move(q);
    if (cancelled_) queue_->cancel();
  }
  void OnCancel() override {
    std::shared_ptr<KeyQueue> q;
    {
      std::lock_guard lk(mu_);
      cancelled_ = true;
      q = queue_;
    }
    if (q) q->cancel();
  }
  void OnDone() override { delete this; }

 private:
  std::mutex mu_;
  std::shared_ptr<KeyQueue> queue_;
  bool cancelled_ = false;
};

}  // namespace balsa::balsad
