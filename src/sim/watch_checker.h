// Watchers for the runtime simulator (node_sim.cc) and the checker of their streams.
//
// Every member's KV state machine feeds a kv::WatchHub of its own (as balsad's does). Simulated
// watchers each hold one stream on one member, watching a prefix or one key, some with NOPUT or
// NODELETE. They drain their streams in simulated time, now and then disconnect and resume on
// another member from their last revision + 1 (and always when their member crashes); a resume
// from a compacted revision is told so by compact_revision and restarts at it.
//
// The reference is the committed history itself: the events every member's store publishes
// for each revision (members applying the same revision must publish the same events: that is
// checked too). Each watcher's stream is checked against it:
//   ordered    event revisions only increase (sub-revision order within one revision);
//   unique     no revision delivered twice;
//   atomic     a revision's matching events arrive all in one message, equal to the reference;
//   no gap     every revision skipped between two messages has no matching event;
//   progress   a progress message at revision R is sent only when all matching events <= R
//              were delivered;
//   resumable  after a resume from revision r the stream continues exactly at r (or at a
//              compact revision above r, announced as such);
//   complete   at the end, every watcher has caught up to the final revision.
// Deterministic: no threads, the hub is driven by step(), the watcher's own Rng.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kv/kv_state_machine.h"
#include "kv/mvcc_store.h"
#include "kv/watch_hub.h"

namespace balsa::sim {

struct WatchStats {
  uint64_t watchers = 0;
  uint64_t events = 0;        // events delivered and checked
  uint64_t messages = 0;
  uint64_t resumes = 0;       // resumes from a past revision (catch-up from history)
  uint64_t compacted = 0;     // resumes refused with compact_revision
  uint64_t progress = 0;      // progress messages checked
};

class WatchChecker {
 public:
  // `planted_skip`: every hub skips the first event after a resume (the negative control).
  WatchChecker(uint64_t seed, int members, int watchers, int keys, bool planted_skip);
  ~WatchChecker();

  // The store options for member `i`'s state machine (its events go to the reference and to
  // the member's hub); then attach() once the state machine exists, before it applies
  // anything, and detach() before it is destroyed (a crash).
  kv::MvccStore::Options store_options(int member);
  void attach(int member, const kv::KvStateMachine& sm);
  void detach(int member);

  // One round at simulated time `now_us`: every hub syncs, every watcher drains and checks,
  // some disconnect or resume. `up[i]`: member i is running.
  void step(uint64_t now_us, const std::vector<bool>& up);
  // After the cluster settled at `revision` on every member: each watcher must reach it.
  void finish(const std::vector<bool>& up, int64_t revision);

  bool ok() const { return violation_.empty(); }
  const std::string& violation() const { return violation_; }
  const WatchStats& stats() const { return stats_; }
  uint64_t hash() const { return hash_; }

 private:
  struct Member;
  struct Watcher;
  void fail(std::string why);
  void on_events(int member, int64_t revision, const std::vector<mvccpb::Event>& events);
  void connect(Watcher& w, int member);
  void drain(Watcher& w);
  void check(Watcher& w, kv::WatchMessage& m);
  // The reference events of `revision` that watcher `w` must see, or nullptr when unknown.
  bool matching(const Watcher& w, int64_t revision, std::vector<const mvccpb::Event*>* out);
  void check_no_match(Watcher& w, int64_t from, int64_t to, const char* what);
  void mix(uint64_t v) { hash_ = (hash_ ^ v) * 0x100000001b3ULL; }

  Rng rng_;
  bool planted_skip_;
  int keys_;
  std::vector<std::unique_ptr<Member>> members_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
  std::map<int64_t, std::vector<mvccpb::Event>> reference_;  // committed revision -> events
  std::string violation_;
  WatchStats stats_;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace balsa::sim
