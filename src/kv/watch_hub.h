// balsa::kv::WatchHub: etcd v3 watches over the applied MVCC store (etcd's mvcc.watchableStore
// plus the per-stream bookkeeping of v3rpc's serverWatchStream), free of gRPC.
//
// Data flow
//   The state machine's apply calls publish(revision, events) (MvccStore::Options::on_events)
//   for every revision that changed something, in revision order, under its exclusive lock.
//   publish never blocks on a watcher: it appends the revision's matching events to the queue
//   of each *synced* watcher's stream and marks the stream ready. A reader (the gRPC service,
//   the simulator, a test) takes a stream's messages with WatchStream::next().
//
// Watchers are synced (they get live events from publish) or unsynced (they read the history
// through the EventSource until they reach the hub's revision, then turn synced). A watcher
// starts unsynced when its start revision is at or below the hub's revision; a synced watcher
// whose stream queue holds more than Options::max_queued_bytes becomes unsynced: its queued
// messages stay, new revisions are not queued for it, and once the queue drained below half
// the bound it is caught up from the history starting right after the last revision queued.
// A watcher whose next revision has been compacted gets one message with compact_revision set
// and is canceled (etcd's behaviour). So memory per stream is bounded and no event is dropped
// silently.
//
// The hub also notices when the store jumped (a snapshot restore on a follower: a published
// revision that is not last + 1, or a current revision ahead of the last one published):
// every synced watcher then turns unsynced and catches up from the restored history.
//
// Guarantees (per watcher): events in revision order (sub-revision order within one), each at
// most once, all matching events of one revision in one message (fragmented only when the
// client asked for fragment), no gap between start_revision and the revision of the last
// message, and progress messages only at revisions whose events were all queued before them.
//
// Threading: every method is thread-safe. publish takes only the hub's mutex. The history is
// read (sync(), WatchStream::next() for prev_kv) with the hub's mutex released, so EventSource
// may take the store's shared lock. Nothing here starts a thread: sync() and progress_tick()
// are driven by the owner (WatchHubRunner below in balsad; the simulator calls them in its own
// deterministic order).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "kv/kv_status.h"

namespace balsa::kv {

class KvStateMachine;

// Where a watch reads the past. Implemented over KvStateMachine by make_event_source().
class EventSource {
 public:
  virtual ~EventSource() = default;
  // MvccStore::events: events of [key, range_end) with start <= revision <= end (0: current),
  // at most `limit` (0: no limit); *current is the store's revision at the read. Fails with
  // errors::compacted() below the compact revision.
  virtual Status events(const std::string& key, const std::string& range_end, int64_t start,
                        int64_t end, size_t limit, std::vector<mvccpb::Event>* out,
                        int64_t* current) const = 0;
  // The key as of `revision` (for prev_kv); false when absent or compacted.
  virtual bool key_at(const std::string& key, int64_t revision, mvccpb::KeyValue* out) const = 0;
  virtual int64_t current_revision() const = 0;
  virtual int64_t compact_revision() const = 0;
};

std::unique_ptr<EventSource> make_event_source(const KvStateMachine& sm);

// A watch create request, after etcd's normalisation (v3rpc recvLoop: an empty key is "\0";
// range_end "\0" means every key >= key).
struct WatchSpec {
  std::string key;
  std::string range_end;        // empty: the single key
  int64_t start_revision = 0;   // 0: from the next revision
  bool prev_kv = false;
  bool no_put = false;          // filter NOPUT
  bool no_delete = false;       // filter NODELETE
  bool progress_notify = false;
  bool fragment = false;
  int64_t watch_id = 0;         // 0 (etcd's AutoWatchID): the stream picks the lowest free id
};

// One response of a stream, in the order the client must see them.
struct WatchMessage {
  enum class Kind {
    kCreated,   // created = true (canceled too, with cancel_reason, when the create failed)
    kEvents,    // events of one or more whole revisions (fragment: more of the same follow)
    kProgress,  // no events: everything up to `revision` has been sent
    kCanceled,  // canceled = true (after a cancel request, a compaction, or a hub limit)
  };
  Kind kind = Kind::kEvents;
  int64_t watch_id = 0;          // -1 (clientv3.InvalidWatchID) for stream-wide progress
  int64_t revision = 0;          // the response header's revision
  std::vector<mvccpb::Event> events;
  int64_t compact_revision = 0;  // set on a cancel because the start revision was compacted
  std::string cancel_reason;
  bool canceled = false;         // kCreated of a failed create
  bool fragment = false;
};

// etcd's messages.
namespace watch_errors {
inline constexpr const char* kEmptyRange = "mvcc: watcher range is empty";
inline constexpr const char* kDuplicateId = "mvcc: duplicate watch ID provided on the WatchStream";
}  // namespace watch_errors

class WatchHub;

// The watches of one client stream (one gRPC Watch call). Obtained from WatchHub::open();
// closing (or destroying) it cancels its watches.
class WatchStream {
 public:
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // Creates a watch; queues its kCreated message (a failed create queues kCreated with
  // canceled and etcd's reason). Returns the watch id, or -1 when the create failed.
  int64_t create(const WatchSpec& spec);
  // Cancels a watch: drops its queued messages and queues kCanceled. False (and nothing
  // queued, as etcd) for an unknown id.
  bool cancel(int64_t watch_id);
  // RequestProgress: queues a kProgress (watch_id -1) at the hub's revision as soon as every
  // watch of the stream is synced, so it never runs ahead of events still to come.
  void request_progress();

  // The next message, or nothing. Fills prev_kv (reading the history, hub unlocked) and
  // splits at `max_message_bytes` for watches created with fragment.
  std::optional<WatchMessage> next();
  // Bytes queued (for the service's read-side back-pressure).
  size_t queued_bytes() const;
  size_t watch_count() const;
  void close();

 private:
  friend class WatchHub;
  struct State;
  WatchStream(WatchHub* hub, std::shared_ptr<State> state) : hub_(hub), state_(std::move(state)) {}
  WatchHub* hub_;
  std::shared_ptr<State> state_;
};

class WatchHub {
 public:
  struct Options {
    // A stream queue above this many bytes stops taking live events for its watchers (they
    // turn unsynced and are caught up from history once it drained below half).
    size_t max_queued_bytes = 8 * 1024 * 1024;
    // Watches per stream; a create beyond it fails with kTooManyWatches.
    size_t max_watches_per_stream = 10000;
    // Events read from history per watcher per sync step (whole revisions are kept whole).
    size_t catchup_batch_events = 1000;
    // Largest response before a fragmenting watch splits it (etcd: --max-request-bytes).
    size_t max_message_bytes = 3 * 1024 * 1024 / 2;
  };
  static constexpr const char* kTooManyWatches = "balsad: too many watches on one stream";

  // `source` must outlive the hub; the hub starts at its current revision.
  WatchHub(const EventSource& source, Options options);
  explicit WatchHub(const EventSource& source) : WatchHub(source, Options{}) {}
  ~WatchHub();

  // MvccStore::Options::on_events. Events of `revision`, in sub-revision order.
  void publish(int64_t revision, const std::vector<mvccpb::Event>& events);

  // Opens a stream. `ready` is called (without hub locks, from sync()/pump() or the thread
  // that queued) whenever the stream has messages to take; it must not block.
  std::unique_ptr<WatchStream> open(std::function<void()> ready);

  // One round of catch-up for unsynced watchers (history reads outside the hub lock).
  // Returns true when some watcher is still unsynced and could make progress.
  bool sync();
  // The periodic progress notification (etcd's progressReportInterval): each synced watch
  // created with progress_notify that had no events since the previous tick gets kProgress.
  void progress_tick();
  // Calls `ready` of every stream that has queued messages and was not told yet.
  void pump();

  const Options& options() const;
  int64_t revision() const;          // the last revision published (or caught up to)
  size_t unsynced_count() const;
  size_t watch_count() const;
  // Blocks until sync() has work (an unsynced watcher, a stream to pump) or `timeout`.
  void wait_for_work(std::chrono::milliseconds timeout);

  // Planted bug for the simulator's checker: a watch created with a past start revision skips
  // the first event of its catch-up. Off in production.
  void set_planted_skip_first_resumed_event(bool on);

 private:
  friend class WatchStream;
  struct Watcher;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Drives a hub from a thread of its own (balsad): sync, pump, and progress ticks every
// `progress_interval` (etcd --experimental-watch-progress-notify-interval, default 10 min).
class WatchHubRunner {
 public:
  WatchHubRunner(WatchHub& hub, std::chrono::milliseconds progress_interval);
  ~WatchHubRunner();

 private:
  void run();
  WatchHub& hub_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace balsa::kv
