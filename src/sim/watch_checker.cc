#include "sim/watch_checker.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace balsa::sim {

struct WatchChecker::Member {
  std::unique_ptr<kv::EventSource> source;
  std::unique_ptr<kv::WatchHub> hub;
};

struct WatchChecker::Watcher {
  int index = 0;
  kv::WatchSpec spec;  // start_revision set at each connect
  int member = -1;
  std::unique_ptr<kv::WatchStream> stream;
  int64_t watch_id = -1;
  int64_t next = 1;             // the first revision not yet accounted for
  uint64_t reconnect_at = 0;
  bool created = false;
  bool fresh = true;            // never connected: the first watch starts "now" (revision 0)
};

namespace {

bool in_range(const kv::WatchSpec& s, const std::string& key) {
  if (s.range_end.empty()) return key == s.key;
  return key >= s.key && key < s.range_end;
}

std::string describe(const mvccpb::Event& e) {
  return fmt::format("{} {}@{} v{} c{} '{}'", e.type() == mvccpb::Event::PUT ? "PUT" : "DELETE", e.kv().key(),
                     e.kv().mod_revision(), e.kv().version(), e.kv().create_revision(), e.kv().value());
}

bool same_event(const mvccpb::Event& a, const mvccpb::Event& b) {
  return a.type() == b.type() && a.kv().SerializeAsString() == b.kv().SerializeAsString();
}

}  // namespace

WatchChecker::WatchChecker(uint64_t seed, int members, int watchers, int keys, bool planted_skip)
    : rng_(seed * 0xA24BAED4963EE407ULL + 5), planted_skip_(planted_skip), keys_(keys) {
  for (int i = 0; i < members; ++i) members_.push_back(std::make_unique<Member>());
  for (int i = 0; i < watchers; ++i) {
    auto w = std::make_unique<Watcher>();
    w->index = i;
    // Kinds: every key ("k" prefix), one key, every key without deletes, every key without puts.
    switch (i % 4) {
      case 0: w->spec.key = "k"; w->spec.range_end = "l"; break;
      case 1: w->spec.key = fmt::format("k{}", rng_.below(static_cast<uint64_t>(std::max(1, keys_)))); break;
      case 2: w->spec.key = "k"; w->spec.range_end = "l"; w->spec.no_delete = true; break;
      case 3: w->spec.key = "k"; w->spec.range_end = "l"; w->spec.no_put = true; break;
    }
    watchers_.push_back(std::move(w));
  }
  stats_.watchers = static_cast<uint64_t>(watchers);
}

WatchChecker::~WatchChecker() {
  for (auto& w : watchers_) w->stream.reset();
  for (auto& m : members_) {
    m->hub.reset();
    m->source.reset();
  }
}

void WatchChecker::fail(std::string why) {
  if (violation_.empty()) violation_ = std::move(why);
}

kv::MvccStore::Options WatchChecker::store_options(int member) {
  kv::MvccStore::Options o;
  o.on_events = [this, member](int64_t revision, std::vector<mvccpb::Event>&& events) {
    on_events(member, revision, events);
  };
  return o;
}

void WatchChecker::attach(int member, const kv::KvStateMachine& sm) {
  Member& m = *members_[member];
  m.source = kv::make_event_source(sm);
  // Small bounds half the time: slow watchers turn unsynced and are caught up from history
  // in short rounds, under the same faults.
  kv::WatchHub::Options o;
  if (rng_.chance(0.5)) {
    o.max_queued_bytes = 200 + rng_.below(2000);
    o.catchup_batch_events = 1 + rng_.below(8);
  }
  m.hub = std::make_unique<kv::WatchHub>(*m.source, o);
  m.hub->set_planted_skip_first_resumed_event(planted_skip_);
}

void WatchChecker::detach(int member) {
  for (auto& w : watchers_) {
    if (w->member != member) continue;
    w->stream.reset();  // the connection dies with the process
    w->member = -1;
    w->reconnect_at = 0;
  }
  members_[member]->hub.reset();
  members_[member]->source.reset();
}

void WatchChecker::on_events(int member, int64_t revision, const std::vector<mvccpb::Event>& events) {
  auto [it, fresh] = reference_.try_emplace(revision, events);
  if (!fresh) {
    bool same = it->second.size() == events.size();
    for (size_t i = 0; same && i < events.size(); ++i) same = same_event(it->second[i], events[i]);
    if (!same)
      fail(fmt::format("n{} applied revision {} with other events than another member ({} vs {} events)",
                       member + 1, revision, events.size(), it->second.size()));
  }
  if (Member& m = *members_[member]; m.hub) m.hub->publish(revision, events);
}

void WatchChecker::connect(Watcher& w, int member) {
  kv::WatchHub& hub = *members_[member]->hub;
  w.member = member;
  w.stream = hub.open(nullptr);
  w.spec.start_revision = w.fresh ? 0 : w.next;
  if (!w.fresh && w.next <= hub.revision()) stats_.resumes++;
  w.created = false;
  w.watch_id = w.stream->create(w.spec);
  mix(0x57A7 ^ static_cast<uint64_t>(member) << 8 ^ static_cast<uint64_t>(w.next) << 16);
  if (w.watch_id < 0) fail(fmt::format("watcher {}: create on n{} from {} refused", w.index, member + 1, w.next));
}

bool WatchChecker::matching(const Watcher& w, int64_t revision, std::vector<const mvccpb::Event*>* out) {
  out->clear();
  auto it = reference_.find(revision);
  if (it == reference_.end()) return false;
  for (const mvccpb::Event& e : it->second) {
    if (!in_range(w.spec, e.kv().key())) continue;
    if (e.type() == mvccpb::Event::PUT ? w.spec.no_put : w.spec.no_delete) continue;
    out->push_back(&e);
  }
  return true;
}

void WatchChecker::check_no_match(Watcher& w, int64_t from, int64_t to, const char* what) {
  std::vector<const mvccpb::Event*> want;
  for (int64_t r = std::max<int64_t>(from, 2); r <= to && ok(); ++r) {
    if (!matching(w, r, &want)) return fail(fmt::format("watcher {}: revision {} unknown to every member", w.index, r));
    if (!want.empty())
      fail(fmt::format("watcher {} on n{}: {} skipped revision {} ({}, {} matching events), expected from {}", w.index,
                       w.member + 1, what, r, describe(*want[0]), want.size(), from));
  }
}

void WatchChecker::check(Watcher& w, kv::WatchMessage& m) {
  using Kind = kv::WatchMessage::Kind;
  stats_.messages++;
  if (m.watch_id != w.watch_id && !(m.kind == Kind::kProgress && m.watch_id == -1))
    return fail(fmt::format("watcher {}: message for watch id {}, expected {}", w.index, m.watch_id, w.watch_id));
  switch (m.kind) {
    case Kind::kCreated:
      if (m.canceled) return fail(fmt::format("watcher {}: create canceled: {}", w.index, m.cancel_reason));
      if (w.created) return fail(fmt::format("watcher {}: created twice", w.index));
      w.created = true;
      if (w.fresh) {  // a watch from now starts after the revision in the created header
        w.fresh = false;
        w.next = m.revision + 1;
      }
      return;
    case Kind::kEvents: {
      if (!w.created) return fail(fmt::format("watcher {}: events before created", w.index));
      if (m.events.empty()) return fail(fmt::format("watcher {}: an events message without events", w.index));
      std::vector<const mvccpb::Event*> want;
      size_t i = 0;
      while (i < m.events.size() && ok()) {
        const int64_t r = m.events[i].kv().mod_revision();
        if (r < w.next)
          return fail(fmt::format("watcher {} on n{}: revision {} after {} (out of order or twice): {}", w.index,
                                  w.member + 1, r, w.next - 1, describe(m.events[i])));
        if (r > m.revision)
          return fail(fmt::format("watcher {}: event at {} in a response at revision {}", w.index, r, m.revision));
        check_no_match(w, w.next, r - 1, "a gap:");
        if (!matching(w, r, &want))
          return fail(fmt::format("watcher {}: revision {} unknown to every member", w.index, r));
        size_t j = i;
        while (j < m.events.size() && m.events[j].kv().mod_revision() == r) ++j;
        if (j - i != want.size())
          return fail(fmt::format("watcher {} on n{}: revision {} with {} events, the history has {} matching (not atomic)",
                                  w.index, w.member + 1, r, j - i, want.size()));
        for (size_t k = 0; k < want.size(); ++k)
          if (!same_event(m.events[i + k], *want[k]))
            return fail(fmt::format("watcher {}: revision {} event {} is {}, the history has {}", w.index, r, k,
                                    describe(m.events[i + k]), describe(*want[k])));
        stats_.events += want.size();
        mix(static_cast<uint64_t>(r) * 31 + static_cast<uint64_t>(w.index));
        w.next = r + 1;
        i = j;
      }
      return;
    }
    case Kind::kProgress:
      stats_.progress++;
      check_no_match(w, w.next, m.revision, "a progress notification ran ahead of events: it");
      w.next = std::max(w.next, m.revision + 1);
      return;
    case Kind::kCanceled:
      if (m.compact_revision == 0)
        return fail(fmt::format("watcher {}: canceled by the server: {}", w.index, m.cancel_reason));
      if (m.compact_revision <= w.next)
        return fail(fmt::format("watcher {}: told compacted at {} while resuming from {} (not compacted)", w.index,
                                m.compact_revision, w.next));
      // etcd's contract: the client learns the gap and starts again at the compact revision.
      stats_.compacted++;
      w.next = m.compact_revision;
      w.stream.reset();
      w.member = -1;
      w.reconnect_at = 0;
      return;
  }
}

void WatchChecker::drain(Watcher& w) {
  while (ok() && w.stream) {
    std::optional<kv::WatchMessage> m = w.stream->next();
    if (!m) return;
    check(w, *m);
  }
}

void WatchChecker::step(uint64_t now_us, const std::vector<bool>& up) {
  if (!ok()) return;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (!up[i] || !members_[i]->hub) continue;
    for (int k = 0; k < 4 && members_[i]->hub->sync(); ++k) {
    }
    if (rng_.chance(0.05)) members_[i]->hub->progress_tick();
  }
  for (auto& wp : watchers_) {
    Watcher& w = *wp;
    if (!ok()) return;
    if (w.member < 0) {
      if (now_us < w.reconnect_at) continue;
      std::vector<int> live;
      for (size_t i = 0; i < members_.size(); ++i)
        if (up[i] && members_[i]->hub) live.push_back(static_cast<int>(i));
      if (live.empty()) continue;
      connect(w, live[rng_.below(live.size())]);
      continue;
    }
    drain(w);
    if (!w.stream) continue;
    if (rng_.chance(0.02)) w.stream->request_progress();
    if (rng_.chance(0.01)) {  // the client goes away for a while, then resumes from next
      w.stream.reset();
      w.member = -1;
      w.reconnect_at = now_us + 5'000 + rng_.below(50'000);
    }
  }
}

void WatchChecker::finish(const std::vector<bool>& up, int64_t revision) {
  for (int round = 0; round < 200 && ok(); ++round) {
    bool all = true;
    for (size_t i = 0; i < members_.size(); ++i)
      if (up[i] && members_[i]->hub) members_[i]->hub->sync();
    for (auto& wp : watchers_) {
      Watcher& w = *wp;
      if (w.next > revision) continue;
      all = false;
      if (w.member < 0) {
        for (size_t i = 0; i < members_.size(); ++i)
          if (up[i] && members_[i]->hub) {
            connect(w, static_cast<int>(i));
            break;
          }
        continue;
      }
      drain(w);
      if (w.stream) w.stream->request_progress();
    }
    if (all) return;
  }
  for (auto& w : watchers_)
    if (ok() && w->next <= revision)
      fail(fmt::format("watcher {} on n{} never caught up: at {}, the cluster at {}", w->index, w->member + 1, w->next,
                       revision));
}

}  // namespace balsa::sim
