#include "kv/watch_hub.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "kv/mvcc_store.h"

namespace balsa::kv {
namespace {

// An MvccStore whose writes feed a hub, read through EventSource (like KvStateMachine, with
// a lock so the threaded test can use it too).
class Fixture : public EventSource {
 public:
  explicit Fixture(WatchHub::Options o = {}) {
    MvccStore::Options so;
    so.on_events = [this](int64_t rev, std::vector<mvccpb::Event>&& evs) {
      if (connected && hub) hub->publish(rev, evs);
    };
    store = std::make_unique<MvccStore>(so);
    hub = std::make_unique<WatchHub>(*this, o);
  }
  Status events(const std::string& key, const std::string& range_end, int64_t start, int64_t end,
                size_t limit, std::vector<mvccpb::Event>* out, int64_t* current) const override {
    std::shared_lock l(mu);
    const Result r = store->events(key, range_end, start, end, limit, out);
    *current = r.revision;
    return r.status;
  }
  bool key_at(const std::string& key, int64_t revision, mvccpb::KeyValue* out) const override {
    std::shared_lock l(mu);
    pb::RangeRequest req;
    req.set_key(key);
    req.set_revision(revision);
    pb::RangeResponse resp;
    if (!store->range(req, &resp).ok() || resp.kvs_size() == 0) return false;
    *out = resp.kvs(0);
    return true;
  }
  int64_t current_revision() const override {
    std::shared_lock l(mu);
    return store->current_revision();
  }
  int64_t compact_revision() const override {
    std::shared_lock l(mu);
    return store->compact_revision();
  }

  int64_t put(const std::string& k, const std::string& v) {
    std::unique_lock l(mu);
    pb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    pb::PutResponse resp;
    return store->put(req, &resp).revision;
  }
  int64_t del(const std::string& k) {
    std::unique_lock l(mu);
    pb::DeleteRangeRequest req;
    req.set_key(k);
    pb::DeleteRangeResponse resp;
    return store->delete_range(req, &resp).revision;
  }
  int64_t txn_puts(const std::vector<std::string>& keys, const std::string& v) {
    std::unique_lock l(mu);
    pb::TxnRequest req;
    for (const auto& k : keys) {
      auto* p = req.add_success()->mutable_request_put();
      p->set_key(k);
      p->set_value(v);
    }
    pb::TxnResponse resp;
    return store->txn(req, &resp).revision;
  }
  void compact(int64_t rev) {
    std::unique_lock l(mu);
    pb::CompactionRequest req;
    req.set_revision(rev);
    pb::CompactionResponse resp;
    ASSERT_TRUE(store->compact(req, &resp).ok());
  }

  // Everything the stream has queued now.
  static std::vector<WatchMessage> drain(WatchStream& s) {
    std::vector<WatchMessage> out;
    while (auto m = s.next()) out.push_back(std::move(*m));
    return out;
  }
  // Sync rounds and drains until nothing moves.
  std::vector<WatchMessage> settle(WatchStream& s) {
    std::vector<WatchMessage> out;
    for (int i = 0; i < 10000; ++i) {
      auto got = drain(s);
      const bool more = hub->sync();
      if (got.empty() && !more && s.queued_bytes() == 0) break;
      for (auto& m : got) out.push_back(std::move(m));
    }
    for (auto& m : drain(s)) out.push_back(std::move(m));
    return out;
  }

  mutable std::shared_mutex mu;
  bool connected = true;
  std::unique_ptr<MvccStore> store;
  std::unique_ptr<WatchHub> hub;
};

WatchSpec prefix(const std::string& p, int64_t start = 0) {
  WatchSpec s;
  s.key = p;
  s.range_end = p;
  s.range_end.back()++;
  s.start_revision = start;
  return s;
}

// (revision, key, type) of every event of one watch, checking per-message invariants.
struct Seen {
  int64_t rev;
  std::string key;
  mvccpb::Event::EventType type;
  bool operator==(const Seen&) const = default;
};
std::vector<Seen> events_of(const std::vector<WatchMessage>& ms, int64_t id) {
  std::vector<Seen> out;
  for (const auto& m : ms) {
    if (m.watch_id != id || m.kind != WatchMessage::Kind::kEvents) continue;
    for (const auto& e : m.events) {
      EXPECT_LE(e.kv().mod_revision(), m.revision) << "header revision behind its events";
      out.push_back({e.kv().mod_revision(), e.kv().key(), e.type()});
    }
  }
  return out;
}

TEST(WatchHub, LiveEventsInRevisionOrderWithCreatedFirst) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/a/"));
  EXPECT_EQ(id, 0);
  f.put("/a/1", "x");
  f.put("/b/1", "x");  // outside the prefix
  f.put("/a/2", "y");
  f.del("/a/1");
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 4u);
  EXPECT_EQ(ms[0].kind, WatchMessage::Kind::kCreated);
  EXPECT_EQ(ms[0].revision, 1);
  EXPECT_FALSE(ms[0].canceled);
  const std::vector<Seen> want = {{2, "/a/1", mvccpb::Event::PUT},
                                  {4, "/a/2", mvccpb::Event::PUT},
                                  {5, "/a/1", mvccpb::Event::DELETE}};
  EXPECT_EQ(events_of(ms, id), want);
  EXPECT_EQ(ms[3].revision, 5);
}

TEST(WatchHub, AllEventsOfOneRevisionInOneMessage) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/t/"));
  f.txn_puts({"/t/a", "/t/b", "/x", "/t/c"}, "v");
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 2u);
  ASSERT_EQ(ms[1].events.size(), 3u);
  EXPECT_EQ(ms[1].watch_id, id);
  for (const auto& e : ms[1].events) EXPECT_EQ(e.kv().mod_revision(), 2);
}

TEST(WatchHub, PastStartCatchesUpFromHistoryThenGoesLiveWithoutGapOrDuplicate) {
  WatchHub::Options o;
  o.catchup_batch_events = 3;  // several rounds, and a 4-event revision larger than a round
  Fixture f(o);
  for (int i = 0; i < 10; ++i) f.put("/p/" + std::to_string(i), "v");
  f.txn_puts({"/p/x1", "/p/x2", "/p/x3", "/p/x4"}, "w");  // rev 12
  for (int i = 0; i < 5; ++i) f.put("/p/" + std::to_string(i), "u");
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/p/", 3));
  EXPECT_EQ(f.hub->unsynced_count(), 1u);
  // Writes during catch-up.
  Fixture::drain(*s);
  f.hub->sync();
  f.put("/p/live1", "v");
  auto ms = f.settle(*s);
  f.put("/p/live2", "v");
  for (auto& m : Fixture::drain(*s)) ms.push_back(std::move(m));
  EXPECT_EQ(f.hub->unsynced_count(), 0u);
  auto seen = events_of(ms, id);
  // Revisions 3..17 (15 of them, 12 holding 4 events) plus the two live ones.
  std::vector<int64_t> revs;
  for (auto& e : seen) revs.push_back(e.rev);
  std::vector<int64_t> want;
  for (int64_t r = 3; r <= 19; ++r) {
    want.push_back(r);
    if (r == 12) want.insert(want.end(), 3, 12);
  }
  EXPECT_EQ(revs, want);
  // Atomic: revision 12 is in one message.
  int messages_with_12 = 0;
  for (auto& m : ms)
    for (auto& e : m.events)
      if (e.kv().mod_revision() == 12) {
        ++messages_with_12;
        break;
      }
  EXPECT_EQ(messages_with_12, 1);
}

TEST(WatchHub, SlowWatcherIsBoundedThenCaughtUpFromHistory) {
  WatchHub::Options o;
  o.max_queued_bytes = 2000;
  Fixture f(o);
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/s/"));
  const std::string v(100, 'v');
  for (int i = 0; i < 500; ++i) f.put("/s/" + std::to_string(i % 7), v);
  // The bound holds while nobody reads: one message past it at most.
  EXPECT_LE(s->queued_bytes(), o.max_queued_bytes + 200);
  EXPECT_EQ(f.hub->unsynced_count(), 1u);
  auto ms = f.settle(*s);
  EXPECT_EQ(f.hub->unsynced_count(), 0u);
  auto seen = events_of(ms, id);
  ASSERT_EQ(seen.size(), 500u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].rev, static_cast<int64_t>(i) + 2);
}

TEST(WatchHub, CompactedStartGetsCompactRevisionAndIsCanceled) {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.put("k", std::to_string(i));
  f.compact(4);
  auto s = f.hub->open(nullptr);
  WatchSpec sp;
  sp.key = "k";
  sp.start_revision = 2;
  const int64_t id = s->create(sp);
  f.hub->sync();
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].kind, WatchMessage::Kind::kCreated);
  EXPECT_FALSE(ms[0].canceled);
  EXPECT_EQ(ms[1].kind, WatchMessage::Kind::kCanceled);
  EXPECT_EQ(ms[1].watch_id, id);
  EXPECT_EQ(ms[1].compact_revision, 4);
  EXPECT_EQ(s->watch_count(), 0u);
  // At the compact revision itself it works.
  sp.start_revision = 4;
  const int64_t id2 = s->create(sp);
  auto ms2 = f.settle(*s);
  auto seen = events_of(ms2, id2);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.front().rev, 4);
}

TEST(WatchHub, SlowWatcherOvertakenByCompactionIsToldNotSilentlyDropped) {
  WatchHub::Options o;
  o.max_queued_bytes = 500;
  Fixture f(o);
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/c/"));
  for (int i = 0; i < 100; ++i) f.put("/c/k", std::string(50, 'a'));
  f.compact(90);
  auto ms = f.settle(*s);
  ASSERT_FALSE(ms.empty());
  EXPECT_EQ(ms.back().kind, WatchMessage::Kind::kCanceled);
  EXPECT_EQ(ms.back().compact_revision, 90);
  auto seen = events_of(ms, id);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].rev, static_cast<int64_t>(i) + 2);
}

TEST(WatchHub, FiltersNoPutAndNoDelete) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  WatchSpec np = prefix("/f/");
  np.no_put = true;
  WatchSpec nd = prefix("/f/");
  nd.no_delete = true;
  const int64_t a = s->create(np);
  const int64_t b = s->create(nd);
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  f.put("/f/1", "x");
  f.del("/f/1");
  auto ms = Fixture::drain(*s);
  EXPECT_EQ(events_of(ms, a), (std::vector<Seen>{{3, "/f/1", mvccpb::Event::DELETE}}));
  EXPECT_EQ(events_of(ms, b), (std::vector<Seen>{{2, "/f/1", mvccpb::Event::PUT}}));
}

TEST(WatchHub, PrevKvIsTheKeyBeforeTheEvent) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  WatchSpec sp;
  sp.key = "k";
  sp.prev_kv = true;
  s->create(sp);
  f.put("k", "one");
  f.put("k", "two");
  f.del("k");
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 4u);
  EXPECT_FALSE(ms[1].events[0].has_prev_kv());  // a create has none
  EXPECT_EQ(ms[2].events[0].prev_kv().value(), "one");
  EXPECT_EQ(ms[3].events[0].prev_kv().value(), "two");
}

TEST(WatchHub, FragmentSplitsALargeRevisionAndMarksAllButTheLast) {
  WatchHub::Options o;
  o.max_message_bytes = 1000;
  Fixture f(o);
  auto s = f.hub->open(nullptr);
  WatchSpec frag = prefix("/g/");
  frag.fragment = true;
  const int64_t id = s->create(frag);
  const int64_t whole = s->create(prefix("/g/"));
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) keys.push_back("/g/" + std::to_string(i));
  f.txn_puts(keys, std::string(300, 'z'));
  auto ms = Fixture::drain(*s);
  std::vector<WatchMessage> pieces;
  for (auto& m : ms)
    if (m.watch_id == id && m.kind == WatchMessage::Kind::kEvents) pieces.push_back(m);
  ASSERT_GE(pieces.size(), 3u);
  size_t n = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].fragment, i + 1 < pieces.size());
    n += pieces[i].events.size();
  }
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(events_of(ms, whole).size(), 10u);
  for (auto& m : ms)
    if (m.watch_id == whole) {
      EXPECT_FALSE(m.fragment);
    }
}

TEST(WatchHub, ProgressNeverAheadOfEvents) {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.put("/r/" + std::to_string(i), "v");
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/r/", 2));  // unsynced: history to read
  s->request_progress();
  auto before = Fixture::drain(*s);
  for (auto& m : before) {
    EXPECT_NE(m.kind, WatchMessage::Kind::kProgress) << "progress while unsynced";
  }
  auto ms = f.settle(*s);
  ASSERT_FALSE(ms.empty());
  EXPECT_EQ(ms.back().kind, WatchMessage::Kind::kProgress);
  EXPECT_EQ(ms.back().watch_id, -1);
  EXPECT_EQ(ms.back().revision, 6);
  EXPECT_EQ(events_of(ms, id).size(), 5u);
}

TEST(WatchHub, ProgressNotifyTickOnlyForQuietSyncedWatches) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  WatchSpec quiet = prefix("/q/");
  quiet.progress_notify = true;
  WatchSpec busy = prefix("/b/");
  busy.progress_notify = true;
  const int64_t q = s->create(quiet);
  const int64_t b = s->create(busy);
  s->create(prefix("/n/"));  // no progress_notify
  Fixture::drain(*s);
  f.put("/b/1", "v");
  f.hub->progress_tick();
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].watch_id, b);
  EXPECT_EQ(ms[1].kind, WatchMessage::Kind::kProgress);
  EXPECT_EQ(ms[1].watch_id, q);
  EXPECT_EQ(ms[1].revision, 2);
  f.hub->progress_tick();  // now both were quiet
  EXPECT_EQ(Fixture::drain(*s).size(), 2u);
}

TEST(WatchHub, BadCreatesGetEtcdsReasons) {
  WatchHub::Options o;
  o.max_watches_per_stream = 3;
  Fixture f(o);
  auto s = f.hub->open(nullptr);
  WatchSpec empty;
  empty.key = "b";
  empty.range_end = "a";
  EXPECT_EQ(s->create(empty), -1);
  WatchSpec a;
  a.key = "a";
  a.watch_id = 7;
  EXPECT_EQ(s->create(a), 7);
  EXPECT_EQ(s->create(a), -1);
  EXPECT_EQ(s->create(prefix("/x/")), 0);
  EXPECT_EQ(s->create(prefix("/y/")), 1);
  EXPECT_EQ(s->create(prefix("/z/")), -1);
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 6u);
  EXPECT_TRUE(ms[0].canceled);
  EXPECT_EQ(ms[0].watch_id, -1);
  EXPECT_EQ(ms[0].cancel_reason, watch_errors::kEmptyRange);
  EXPECT_EQ(ms[2].cancel_reason, watch_errors::kDuplicateId);
  EXPECT_EQ(ms[5].cancel_reason, WatchHub::kTooManyWatches);
  // From-key (range_end "\0") is not an empty range.
  WatchSpec gte;
  gte.key = "m";
  gte.range_end = std::string(1, '\0');
  EXPECT_TRUE(s->cancel(7));
  EXPECT_GE(s->create(gte), 0);
  EXPECT_FALSE(s->cancel(99));
}

TEST(WatchHub, CancelDropsQueuedEventsAndSaysCanceled) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/d/"));
  Fixture::drain(*s);
  f.put("/d/1", "v");
  EXPECT_TRUE(s->cancel(id));
  f.put("/d/2", "v");
  auto ms = Fixture::drain(*s);
  ASSERT_EQ(ms.size(), 1u);
  EXPECT_EQ(ms[0].kind, WatchMessage::Kind::kCanceled);
  EXPECT_EQ(ms[0].watch_id, id);
}

TEST(WatchHub, AStoreThatJumpedIsCaughtUpFromHistory) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  const int64_t id = s->create(prefix("/j/"));
  f.put("/j/1", "v");
  f.connected = false;  // as a snapshot restore: the store moves without publishing
  f.put("/j/2", "v");
  f.put("/j/3", "v");
  f.connected = true;
  f.put("/j/4", "v");  // revision 5 after last published 2: a jump
  auto ms = f.settle(*s);
  f.put("/j/5", "v");
  for (auto& m : Fixture::drain(*s)) ms.push_back(std::move(m));
  std::vector<int64_t> revs;
  for (auto& e : events_of(ms, id)) revs.push_back(e.rev);
  EXPECT_EQ(revs, (std::vector<int64_t>{2, 3, 4, 5, 6}));
}

TEST(WatchHub, FutureStartWaitsForItsRevision) {
  Fixture f;
  auto s = f.hub->open(nullptr);
  WatchSpec sp;
  sp.key = "k";
  sp.start_revision = 4;
  const int64_t id = s->create(sp);
  for (int i = 0; i < 4; ++i) f.put("k", "v");
  auto seen = events_of(Fixture::drain(*s), id);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].rev, 4);
}

TEST(WatchHub, PlantedSkipLosesTheFirstResumedEvent) {
  Fixture f;
  f.hub->set_planted_skip_first_resumed_event(true);
  for (int i = 0; i < 3; ++i) f.put("k", "v");
  auto s = f.hub->open(nullptr);
  WatchSpec sp;
  sp.key = "k";
  sp.start_revision = 2;
  const int64_t id = s->create(sp);
  auto seen = events_of(f.settle(*s), id);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].rev, 3);
}

// Writers, a runner thread and readers at once: every watcher sees each revision of its
// prefix exactly once, in order, whatever the interleaving of live delivery and catch-up.
TEST(WatchHub, ConcurrentWritersAndWatchersSeeEveryRevisionOnce) {
  WatchHub::Options o;
  o.max_queued_bytes = 4096;  // force slow-path catch-ups
  Fixture f(o);
  WatchHubRunner runner(*f.hub, std::chrono::milliseconds(5));
  constexpr int kWatchers = 8;
  constexpr int kPuts = 3000;
  std::vector<std::unique_ptr<WatchStream>> streams;
  std::vector<int64_t> ids;
  for (int i = 0; i < kWatchers; ++i) {
    streams.push_back(f.hub->open(nullptr));
    ids.push_back(streams.back()->create(prefix("/w/", i % 2 == 0 ? 0 : 1)));
  }
  const int64_t first = f.current_revision() + 1;
  std::thread writer([&] {
    for (int i = 0; i < kPuts; ++i) f.put("/w/" + std::to_string(i % 13), std::string(64, 'x'));
  });
  std::vector<std::vector<int64_t>> got(kWatchers);
  std::atomic<bool> writing{true};
  std::vector<std::thread> readers;
  for (int i = 0; i < kWatchers; ++i) {
    readers.emplace_back([&, i] {
      const int64_t want_last = first + kPuts - 1;
      for (int spin = 0; spin < 200000; ++spin) {
        auto m = streams[i]->next();
        if (!m) {
          if (!got[i].empty() && got[i].back() == want_last) return;
          if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // a slow one
          else std::this_thread::yield();
          continue;
        }
        for (auto& e : m->events) got[i].push_back(e.kv().mod_revision());
      }
    });
  }
  writer.join();
  writing = false;
  for (auto& t : readers) t.join();
  for (int i = 0; i < kWatchers; ++i) {
    // Watchers from revision 1 also see nothing before `first` (no writes before).
    ASSERT_EQ(got[i].size(), static_cast<size_t>(kPuts)) << "watcher " << i;
    for (int k = 0; k < kPuts; ++k) ASSERT_EQ(got[i][k], first + k) << "watcher " << i;
  }
}

}  // namespace
}  // namespace balsa::kv
