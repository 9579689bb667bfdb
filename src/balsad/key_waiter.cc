#include "balsad/key_waiter.h"

#include <utility>

namespace balsa::balsad {

struct KeyWaiter::WaitImpl final : KeyWaiter::Wait, std::enable_shared_from_this<KeyWaiter::WaitImpl> {
  KeyWaiter* owner = nullptr;
  Match match;
  Done done;
  std::mutex mu;
  std::unique_ptr<kv::WatchStream> stream;  // guarded by mu
  bool finished = false;                    // guarded by mu
  bool scheduled = false;                   // a drain is queued

  void cancel() override {
    std::unique_ptr<kv::WatchStream> s;
    {
      std::lock_guard lk(mu);
      finished = true;
      s = std::move(stream);
    }
    // closed outside our lock: closing may call back into the hub
  }

  // On the waiter's thread: take the stream's messages until a match or a cancel.
  void drain() {
    std::optional<mvccpb::Event> hit;
    bool end = false;
    {
      std::lock_guard lk(mu);
      scheduled = false;
      if (finished || !stream) return;
      while (auto m = stream->next()) {
        if (m->kind == kv::WatchMessage::Kind::kCanceled ||
            (m->kind == kv::WatchMessage::Kind::kCreated && m->canceled)) {
          end = true;
          break;
        }
        if (m->kind != kv::WatchMessage::Kind::kEvents) continue;
        for (const auto& ev : m->events) {
          if (match(ev)) {
            hit = ev;
            end = true;
            break;
          }
        }
        if (end) break;
      }
      if (!end) return;
      finished = true;
    }
    cancel();
    done(std::move(hit));
  }
};

KeyWaiter::KeyWaiter(kv::WatchHub& hub) : hub_(hub), thread_([this] { run(); }) {}

KeyWaiter::~KeyWaiter() {
  std::vector<std::weak_ptr<WaitImpl>> waits;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    waits.swap(waits_);
  }
  for (auto& w : waits)
    if (auto p = w.lock()) p->cancel();
  cv_.notify_all();
  thread_.join();
}

void KeyWaiter::post(std::function<void()> f) {
  {
    std::lock_guard lk(mu_);
    if (stop_) return;
    queue_.push_back(std::move(f));
  }
  cv_.notify_one();
}

void KeyWaiter::run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;  // pending waits are abandoned: the server is stopping
    auto f = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    f();
    lk.lock();
  }
}

std::shared_ptr<KeyWaiter::Wait> KeyWaiter::wait(const std::string& key, const std::string& range_end,
                                                 int64_t from_revision, Match match, Done done) {
  auto w = std::make_shared<WaitImpl>();
  w->owner = this;
  w->match = std::move(match);
  w->done = std::move(done);
  std::weak_ptr<WaitImpl> weak = w;
  {
    std::lock_guard lk(mu_);
    std::erase_if(waits_, [](const std::weak_ptr<WaitImpl>& x) { return x.expired(); });
    waits_.push_back(weak);
  }
  auto stream = hub_.open([this, weak] {
    // Called from whichever thread queued: hand the work to ours.
    auto w = weak.lock();
    if (!w) return;
    {
      std::lock_guard lk(w->mu);
      if (w->scheduled || w->finished) return;
      w->scheduled = true;
    }
    post([w] { w->drain(); });
  });
  kv::WatchSpec spec;
  spec.key = key;
  spec.range_end = range_end;
  spec.start_revision = from_revision;
  kv::WatchStream* raw = stream.get();
  {
    std::lock_guard lk(w->mu);
    w->stream = std::move(stream);
  }
  // Outside w->mu: create may call `ready` on this thread, which takes it. Nobody can cancel
  // (and so destroy the stream) before this returns the handle.
  raw->create(spec);
  post([w] { w->drain(); });  // messages queued before the stream was stored
  return w;
}

}  // namespace balsa::balsad
