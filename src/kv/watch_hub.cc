#include "kv/watch_hub.h"

#include <algorithm>
#include <utility>

#include "kv/kv_state_machine.h"

namespace balsa::kv {
namespace {

constexpr size_t kEventOverhead = 48;  // rough per-event proto overhead for queue accounting

size_t event_bytes(const mvccpb::Event& e) {
  return e.kv().key().size() + e.kv().value().size() + kEventOverhead;
}

int64_t event_rev(const mvccpb::Event& e) { return e.kv().mod_revision(); }

bool in_range(const WatchSpec& s, const std::string& key) {
  if (s.range_end.empty()) return key == s.key;
  if (s.range_end.size() == 1 && s.range_end[0] == '\0') return key >= s.key;
  return key >= s.key && key < s.range_end;
}

bool passes_filters(const WatchSpec& s, const mvccpb::Event& e) {
  if (e.type() == mvccpb::Event::PUT) return !s.no_put;
  return !s.no_delete;
}

// etcd's isCreateEvent: a put that starts a key's generation has no previous value.
bool is_create(const mvccpb::Event& e) {
  return e.type() == mvccpb::Event::PUT && e.kv().create_revision() == e.kv().mod_revision();
}

class SmEventSource final : public EventSource {
 public:
  explicit SmEventSource(const KvStateMachine& sm) : sm_(sm) {}
  Status events(const std::string& key, const std::string& range_end, int64_t start, int64_t end,
                size_t limit, std::vector<mvccpb::Event>* out, int64_t* current) const override {
    const Result r = sm_.events(key, range_end, start, end, limit, out);
    *current = r.revision;
    return r.status;
  }
  bool key_at(const std::string& key, int64_t revision, mvccpb::KeyValue* out) const override {
    pb::RangeRequest req;
    req.set_key(key);
    req.set_revision(revision);
    pb::RangeResponse resp;
    if (!sm_.range(req, &resp).ok() || resp.kvs_size() == 0) return false;
    out->Swap(resp.mutable_kvs(0));
    return true;
  }
  int64_t current_revision() const override { return sm_.revisions().current; }
  int64_t compact_revision() const override { return sm_.revisions().compact; }

 private:
  const KvStateMachine& sm_;
};

}  // namespace

std::unique_ptr<EventSource> make_event_source(const KvStateMachine& sm) {
  return std::make_unique<SmEventSource>(sm);
}

// ---- State ------------------------------------------------------------------------------------

struct WatchHub::Watcher {
  uint64_t serial = 0;        // unique over the hub's life (an id may be reused after cancel)
  int64_t id = 0;
  WatchSpec spec;
  WatchStream::State* stream = nullptr;
  int64_t next_rev = 0;       // the first revision not yet queued (or skipped as unmatched)
  bool synced = false;
  bool events_since_tick = false;
  bool resumed = false;       // created with a past start revision, first catch-up not done
};

// A queued message. Live events share the revision's batch: `pick` lists the matching
// indices, materialised by next().
struct QueuedMessage {
  WatchMessage msg;
  std::shared_ptr<const std::vector<mvccpb::Event>> batch;
  std::vector<uint32_t> pick;
  size_t bytes = 0;
  bool prev_kv = false;
  bool fragment = false;
};

struct WatchStream::State {
  std::function<void()> ready;
  std::map<int64_t, std::unique_ptr<WatchHub::Watcher>> watches;
  std::deque<QueuedMessage> queue;
  size_t queued_bytes = 0;
  bool notified = false;          // ready() called, queue not yet drained by next()
  bool progress_requested = false;
  bool closed = false;
  int64_t next_auto_id = 0;
  std::mutex take_mu;             // one next() at a time (fragments go back to the front)
};

struct WatchHub::Impl {
  Impl(const EventSource& src, Options opt) : source(src), options(opt) {}
  const EventSource& source;
  Options options;
  mutable std::mutex mu;
  std::condition_variable cv;
  int64_t last_rev = 0;
  uint64_t next_serial = 1;
  bool planted_skip = false;
  std::vector<std::shared_ptr<WatchStream::State>> streams;
  std::set<Watcher*> unsynced;
  std::vector<std::shared_ptr<WatchStream::State>> dirty;

  void enqueue(WatchStream::State* st, QueuedMessage&& m) {
    st->queued_bytes += m.bytes;
    st->queue.push_back(std::move(m));
    mark_dirty(st);
  }
  void mark_dirty(WatchStream::State* st) {
    if (st->notified) return;
    for (auto& d : dirty)
      if (d.get() == st) return;
    for (auto& s : streams)
      if (s.get() == st) {
        dirty.push_back(s);
        break;
      }
    cv.notify_all();
  }
  void make_unsynced(Watcher* w) {
    w->synced = false;
    unsynced.insert(w);
    cv.notify_all();
  }
  // The store jumped (snapshot restore): nobody can trust live delivery to cover the gap.
  // Watchers waiting for a revision beyond the jump stay synced.
  void jump_to(int64_t rev) {
    for (auto& s : streams)
      for (auto& [id, w] : s->watches)
        if (w->synced && w->next_rev <= rev) make_unsynced(w.get());
    last_rev = rev;
  }
  bool can_sync() const {
    for (Watcher* w : unsynced)
      if (low_water(w->stream)) return true;
    return false;
  }
  bool all_synced(const WatchStream::State* st) const {
    for (const auto& [id, w] : st->watches)
      if (!w->synced) return false;
    return true;
  }
  void maybe_stream_progress(WatchStream::State* st) {
    if (!st->progress_requested || !all_synced(st)) return;
    st->progress_requested = false;
    QueuedMessage q;
    q.msg.kind = WatchMessage::Kind::kProgress;
    q.msg.watch_id = -1;
    q.msg.revision = last_rev;
    q.bytes = kEventOverhead;
    enqueue(st, std::move(q));
  }
  // Events of a canceled watch not yet taken (its kCreated stays: the client needs it).
  void drop_queued(WatchStream::State* st, int64_t id) {
    auto& q = st->queue;
    for (auto it = q.begin(); it != q.end();) {
      if (it->msg.watch_id == id && it->msg.kind == WatchMessage::Kind::kEvents) {
        st->queued_bytes -= it->bytes;
        it = q.erase(it);
      } else {
        ++it;
      }
    }
  }
  void remove_watcher(WatchStream::State* st, int64_t id) {
    auto it = st->watches.find(id);
    if (it == st->watches.end()) return;
    unsynced.erase(it->second.get());
    st->watches.erase(it);
  }
  bool low_water(const WatchStream::State* st) const {
    return st->queued_bytes <= options.max_queued_bytes / 2;
  }
};

// ---- WatchStream --------------------------------------------------------------------------------

WatchStream::~WatchStream() { close(); }

int64_t WatchStream::create(const WatchSpec& spec) {
  WatchHub::Impl& h = *hub_->impl_;
  std::lock_guard lock(h.mu);
  State* st = state_.get();
  QueuedMessage q;
  q.msg.kind = WatchMessage::Kind::kCreated;
  q.msg.revision = h.last_rev;
  q.bytes = kEventOverhead;
  auto fail = [&](const char* why) {
    q.msg.watch_id = -1;
    q.msg.canceled = true;
    q.msg.cancel_reason = why;
    h.enqueue(st, std::move(q));
    return int64_t{-1};
  };
  if (st->closed) return -1;
  const bool gte = spec.range_end.size() == 1 && spec.range_end[0] == '\0';
  if (!spec.range_end.empty() && !gte && spec.key >= spec.range_end) return fail(watch_errors::kEmptyRange);
  int64_t id = spec.watch_id;
  if (id == 0) {
    while (st->watches.count(st->next_auto_id) != 0) ++st->next_auto_id;
    id = st->next_auto_id++;
  } else if (st->watches.count(id) != 0) {
    return fail(watch_errors::kDuplicateId);
  }
  if (st->watches.size() >= h.options.max_watches_per_stream) return fail(WatchHub::kTooManyWatches);

  auto w = std::make_unique<WatchHub::Watcher>();
  w->serial = h.next_serial++;
  w->id = id;
  w->spec = spec;
  w->stream = st;
  const int64_t start = spec.start_revision == 0 ? h.last_rev + 1 : spec.start_revision;
  w->next_rev = start;
  q.msg.watch_id = id;
  h.enqueue(st, std::move(q));
  WatchHub::Watcher* raw = w.get();
  st->watches.emplace(id, std::move(w));
  if (start > h.last_rev) {
    raw->synced = true;
  } else {
    raw->resumed = true;
    h.make_unsynced(raw);
  }
  return id;
}

bool WatchStream::cancel(int64_t watch_id) {
  WatchHub::Impl& h = *hub_->impl_;
  std::lock_guard lock(h.mu);
  State* st = state_.get();
  if (st->watches.count(watch_id) == 0) return false;
  h.remove_watcher(st, watch_id);
  h.drop_queued(st, watch_id);
  QueuedMessage q;
  q.msg.kind = WatchMessage::Kind::kCanceled;
  q.msg.watch_id = watch_id;
  q.msg.revision = h.last_rev;
  q.bytes = kEventOverhead;
  h.enqueue(st, std::move(q));
  h.maybe_stream_progress(st);
  return true;
}

void WatchStream::request_progress() {
  WatchHub::Impl& h = *hub_->impl_;
  std::lock_guard lock(h.mu);
  state_->progress_requested = true;
  h.maybe_stream_progress(state_.get());
}

size_t WatchStream::queued_bytes() const {
  std::lock_guard lock(hub_->impl_->mu);
  return state_->queued_bytes;
}

size_t WatchStream::watch_count() const {
  std::lock_guard lock(hub_->impl_->mu);
  return state_->watches.size();
}

void WatchStream::close() {
  if (!state_) return;
  WatchHub::Impl& h = *hub_->impl_;
  std::lock_guard lock(h.mu);
  State* st = state_.get();
  if (st->closed) return;
  st->closed = true;
  for (auto& [id, w] : st->watches) h.unsynced.erase(w.get());
  st->watches.clear();
  st->queue.clear();
  st->queued_bytes = 0;
  std::erase_if(h.streams, [st](const auto& s) { return s.get() == st; });
  std::erase_if(h.dirty, [st](const auto& s) { return s.get() == st; });
}

std::optional<WatchMessage> WatchStream::next() {
  WatchHub::Impl& h = *hub_->impl_;
  std::lock_guard take(state_->take_mu);
  QueuedMessage q;
  {
    std::lock_guard lock(h.mu);
    State* st = state_.get();
    if (st->queue.empty()) {
      st->notified = false;
      return std::nullopt;
    }
    q = std::move(st->queue.front());
    st->queue.pop_front();
    const bool was_high = !h.low_water(st);
    st->queued_bytes -= q.bytes;
    if (was_high && h.low_water(st) && !h.unsynced.empty()) h.cv.notify_all();
  }
  WatchMessage m = std::move(q.msg);
  if (q.batch) {
    m.events.reserve(q.pick.size());
    for (uint32_t i : q.pick) m.events.push_back((*q.batch)[i]);
  }
  if (q.prev_kv) {
    for (mvccpb::Event& e : m.events) {
      if (is_create(e)) continue;
      mvccpb::KeyValue prev;
      if (h.source.key_at(e.kv().key(), event_rev(e) - 1, &prev)) e.mutable_prev_kv()->Swap(&prev);
    }
  }
  if (q.fragment && m.events.size() >= 2) {
    // etcd's sendFragments: fill each piece until it reaches the limit (at least one event).
    size_t total = 0;
    for (const auto& e : m.events) total += e.ByteSizeLong() + 8;
    if (total >= h.options.max_message_bytes) {
      std::vector<WatchMessage> pieces;
      WatchMessage cur;
      size_t cur_bytes = 0;
      auto start_piece = [&] {
        cur = WatchMessage{};
        cur.kind = m.kind;
        cur.watch_id = m.watch_id;
        cur.revision = m.revision;
        cur.fragment = true;
        cur_bytes = 0;
      };
      start_piece();
      for (auto& e : m.events) {
        const size_t b = e.ByteSizeLong() + 8;
        if (!cur.events.empty() && cur_bytes + b >= h.options.max_message_bytes) {
          pieces.push_back(std::move(cur));
          start_piece();
        }
        cur_bytes += b;
        cur.events.push_back(std::move(e));
      }
      cur.fragment = false;
      pieces.push_back(std::move(cur));
      std::lock_guard lock(h.mu);
      for (size_t i = pieces.size(); i-- > 1;) {
        QueuedMessage rest;
        rest.msg = std::move(pieces[i]);
        state_->queue.push_front(std::move(rest));
      }
      return std::move(pieces[0]);
    }
  }
  return m;
}

// ---- WatchHub -----------------------------------------------------------------------------------

WatchHub::WatchHub(const EventSource& source, Options options)
    : impl_(std::make_unique<Impl>(source, options)) {
  impl_->last_rev = source.current_revision();
}

WatchHub::~WatchHub() = default;

std::unique_ptr<WatchStream> WatchHub::open(std::function<void()> ready) {
  auto st = std::make_shared<WatchStream::State>();
  st->ready = std::move(ready);
  std::lock_guard lock(impl_->mu);
  impl_->streams.push_back(st);
  return std::unique_ptr<WatchStream>(new WatchStream(this, st));
}

void WatchHub::publish(int64_t revision, const std::vector<mvccpb::Event>& events) {
  Impl& h = *impl_;
  std::lock_guard lock(h.mu);
  if (revision <= h.last_rev) return;  // already caught up past it (after a restore)
  if (revision != h.last_rev + 1) {
    h.jump_to(revision);
    return;
  }
  h.last_rev = revision;
  std::shared_ptr<const std::vector<mvccpb::Event>> batch;
  std::vector<size_t> sizes;
  for (auto& st : h.streams) {
    for (auto& [id, wp] : st->watches) {
      Watcher* w = wp.get();
      if (!w->synced || revision < w->next_rev) continue;
      w->next_rev = revision + 1;
      std::vector<uint32_t> pick;
      size_t bytes = 0;
      for (size_t i = 0; i < events.size(); ++i) {
        const mvccpb::Event& e = events[i];
        if (!in_range(w->spec, e.kv().key()) || !passes_filters(w->spec, e)) continue;
        pick.push_back(static_cast<uint32_t>(i));
        if (sizes.empty()) {
          sizes.resize(events.size());
          for (size_t j = 0; j < events.size(); ++j) sizes[j] = event_bytes(events[j]);
        }
        bytes += sizes[i];
      }
      if (pick.empty()) continue;
      if (st->queued_bytes > h.options.max_queued_bytes) {
        w->next_rev = revision;  // not queued: read it from history later
        h.make_unsynced(w);
        continue;
      }
      if (!batch) batch = std::make_shared<const std::vector<mvccpb::Event>>(events);
      QueuedMessage q;
      q.msg.kind = WatchMessage::Kind::kEvents;
      q.msg.watch_id = w->id;
      q.msg.revision = revision;
      q.batch = batch;
      q.pick = std::move(pick);
      q.bytes = bytes;
      q.prev_kv = w->spec.prev_kv;
      q.fragment = w->spec.fragment;
      w->events_since_tick = true;
      h.enqueue(st.get(), std::move(q));
    }
  }
}

bool WatchHub::sync() {
  Impl& h = *impl_;
  struct Job {
    std::shared_ptr<WatchStream::State> stream;
    int64_t id;
    uint64_t serial;
    WatchSpec spec;
    int64_t from;
    bool skip_first;
    // result
    Status status;
    std::vector<mvccpb::Event> events;
    int64_t upto = 0;
    int64_t compact = 0;
  };
  const int64_t store_rev = h.source.current_revision();
  std::vector<Job> jobs;
  {
    std::lock_guard lock(h.mu);
    if (store_rev > h.last_rev) h.jump_to(store_rev);  // a restore: the store moved on
    for (Watcher* w : h.unsynced) {
      WatchStream::State* st = w->stream;
      if (!h.low_water(st)) continue;
      std::shared_ptr<WatchStream::State> sp;
      for (auto& s : h.streams)
        if (s.get() == st) sp = s;
      if (!sp) continue;
      jobs.push_back({sp, w->id, w->serial, w->spec, w->next_rev, h.planted_skip && w->resumed, {}, {}, 0, 0});
      if (jobs.size() >= 512) break;  // etcd's maxWatchersPerSync
    }
  }
  if (jobs.empty()) return false;

  const size_t limit = h.options.catchup_batch_events;
  for (Job& j : jobs) {
    int64_t cur = 0;
    j.status = h.source.events(j.spec.key, j.spec.range_end, j.from, 0, limit, &j.events, &cur);
    if (!j.status.ok()) {
      j.compact = h.source.compact_revision();
      continue;
    }
    j.upto = cur;
    if (limit > 0 && j.events.size() >= limit) {
      // Keep revisions whole: drop the last (possibly partial) revision, unless it is the
      // only one, which is then read completely.
      const int64_t last = event_rev(j.events.back());
      if (event_rev(j.events.front()) == last) {
        j.status = h.source.events(j.spec.key, j.spec.range_end, last, last, 0, &j.events, &cur);
        if (!j.status.ok()) {
          j.compact = h.source.compact_revision();
          continue;
        }
        j.upto = last;
      } else {
        while (!j.events.empty() && event_rev(j.events.back()) == last) j.events.pop_back();
        j.upto = last - 1;
      }
    }
  }

  bool more = false;
  std::lock_guard lock(h.mu);
  for (Job& j : jobs) {
    WatchStream::State* st = j.stream.get();
    auto it = st->watches.find(j.id);
    if (st->closed || it == st->watches.end() || it->second->serial != j.serial) continue;
    Watcher* w = it->second.get();
    if (w->synced || w->next_rev != j.from) continue;
    if (!j.status.ok()) {
      // etcd: a watcher behind the compaction gets compact_revision and is canceled.
      QueuedMessage q;
      q.msg.kind = WatchMessage::Kind::kCanceled;
      q.msg.watch_id = j.id;
      q.msg.revision = h.last_rev;
      q.msg.compact_revision = j.compact;
      q.msg.cancel_reason = j.status.message;
      q.bytes = kEventOverhead;
      h.remove_watcher(st, j.id);
      h.drop_queued(st, j.id);
      h.enqueue(st, std::move(q));
      h.maybe_stream_progress(st);
      continue;
    }
    QueuedMessage q;
    q.msg.kind = WatchMessage::Kind::kEvents;
    q.msg.watch_id = j.id;
    q.msg.revision = j.upto;
    bool skipped = !j.skip_first;
    for (auto& e : j.events) {
      if (!passes_filters(w->spec, e)) continue;
      if (!skipped) {  // planted bug
        skipped = true;
        continue;
      }
      q.bytes += event_bytes(e);
      q.msg.events.push_back(std::move(e));
    }
    w->resumed = false;
    q.prev_kv = w->spec.prev_kv;
    q.fragment = w->spec.fragment;
    if (!q.msg.events.empty()) {
      w->events_since_tick = true;
      h.enqueue(st, std::move(q));
    }
    w->next_rev = j.upto + 1;
    if (j.upto > h.last_rev) h.jump_to(j.upto);  // the store moved on (a restore)
    if (w->next_rev > h.last_rev) {
      w->synced = true;
      h.unsynced.erase(w);
      h.maybe_stream_progress(st);
    } else {
      more = true;
    }
  }
  return more || h.can_sync();
}

void WatchHub::progress_tick() {
  Impl& h = *impl_;
  std::lock_guard lock(h.mu);
  for (auto& st : h.streams) {
    for (auto& [id, w] : st->watches) {
      if (!w->spec.progress_notify) continue;
      if (w->synced && !w->events_since_tick) {
        QueuedMessage q;
        q.msg.kind = WatchMessage::Kind::kProgress;
        q.msg.watch_id = id;
        q.msg.revision = h.last_rev;
        q.bytes = kEventOverhead;
        h.enqueue(st.get(), std::move(q));
      }
      w->events_since_tick = false;
    }
  }
}

void WatchHub::pump() {
  std::vector<std::shared_ptr<WatchStream::State>> tell;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& s : impl_->dirty) {
      if (s->closed || s->notified || s->queue.empty()) continue;
      s->notified = true;
      tell.push_back(s);
    }
    impl_->dirty.clear();
  }
  for (auto& s : tell)
    if (s->ready) s->ready();
}

const WatchHub::Options& WatchHub::options() const { return impl_->options; }

int64_t WatchHub::revision() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_rev;
}

size_t WatchHub::unsynced_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->unsynced.size();
}

size_t WatchHub::watch_count() const {
  std::lock_guard lock(impl_->mu);
  size_t n = 0;
  for (auto& s : impl_->streams) n += s->watches.size();
  return n;
}

void WatchHub::wait_for_work(std::chrono::milliseconds timeout) {
  Impl& h = *impl_;
  std::unique_lock lock(h.mu);
  h.cv.wait_for(lock, timeout, [&] { return !h.dirty.empty() || h.can_sync(); });
}

void WatchHub::set_planted_skip_first_resumed_event(bool on) {
  std::lock_guard lock(impl_->mu);
  impl_->planted_skip = on;
}

// ---- WatchHubRunner -----------------------------------------------------------------------------

WatchHubRunner::WatchHubRunner(WatchHub& hub, std::chrono::milliseconds progress_interval)
    : hub_(hub), interval_(progress_interval), thread_([this] { run(); }) {}

WatchHubRunner::~WatchHubRunner() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void WatchHubRunner::run() {
  auto next_tick = std::chrono::steady_clock::now() + interval_;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_tick) {
      hub_.progress_tick();
      next_tick = now + interval_;
    }
    const bool more = hub_.sync();
    hub_.pump();
    if (!more) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now);
      hub_.wait_for_work(std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
    }
  }
}

}  // namespace balsa::kv
