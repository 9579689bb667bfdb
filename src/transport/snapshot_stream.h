// The snapshot chunk protocol, shared by every transport (gRPC, loopback, the node simulator).
//
// The Raft core treats a snapshot as metadata plus "send it": its kSnap message carries no
// image. A transport that sees a kSnap message streams the leader's snapshot file (as it lies in
// the SnapshotStore, with its own checksums) to the follower on a path of its own, apart from
// heartbeats and appends, and delivers the kSnap message to the follower's core only once the
// whole file is on the follower's disk and verified. One transfer, over any number of
// connections:
//
//   sender                                   receiver (one per node: SnapshotReceiver)
//   offer{kSnap msg, file size}      ---->   same snapshot, same sender, partial file held?
//                                    <----   ack{offset = bytes held}  (0: start over)
//   chunk{term, offset, bytes, crc}  ---->   checks term, crc32c, offset == bytes held; appends
//   ... at most window chunks ahead  <----   ack{offset} per chunk
//   last chunk                       ---->   fdatasync, verify the whole file, rename .recv
//                                    <----   ack{done}; the kSnap goes to the follower's core
//
// A connection that drops mid-transfer is reopened by the sender with the same offer; the
// receiver answers with what it holds and the transfer resumes from the last chunk it
// acknowledged. A chunk out of order, from an old term or with a bad checksum is refused and
// counted; the sender then reconnects and resumes from the receiver's offset. A file that does
// not verify at the end is deleted and the transfer restarts at 0. A new snapshot (or a new
// sender) replaces a transfer in progress.
//
// Leader memory per transfer in flight: one chunk buffer plus at most `window_chunks` chunks
// written and not yet acknowledged, i.e. under (window_chunks + 2) x chunk_bytes (6 MiB with
// the defaults) whatever the snapshot's size.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/types.h"
#include "storage/snapshot_store.h"

namespace balsa {

struct SnapshotStreamOptions {
  size_t chunk_bytes = 1u << 20;
  size_t window_chunks = 4;         // chunks written ahead of the receiver's acknowledgement
  uint64_t rate_bytes_per_sec = 0;  // 0: unlimited
  int max_attempts = 10;            // connections per transfer before it is reported lost
};

// The first frame of every connection of a transfer. `msg` is the core's kSnap (no image).
struct SnapshotOffer {
  Message msg;
  uint64_t file_bytes = 0;
};

struct SnapshotChunk {
  Term term;            // the sender's term (equal to the offer's)
  uint64_t offset = 0;  // where these bytes go in the file
  std::string data;
  uint32_t crc = 0;     // crc32c of data
};

enum class SnapshotVerdict : uint8_t {
  kOk = 0,       // go on from `offset`
  kDone,         // the file is in and verified: the transfer is complete
  kOutOfOrder,   // refused: the chunk is not at the receiver's offset (or overruns the file)
  kOldTerm,      // refused: the offer or chunk carries a term older than one already seen
  kBadChecksum,  // refused: the chunk's crc32c does not match its bytes
  kBadImage,     // the whole file did not verify: deleted, start over at 0
  kNoTransfer,   // a chunk with no transfer of this sender in progress (offer first)
  kFailed,       // the receiver could not take it (bad offer, storage failed)
};
const char* to_string(SnapshotVerdict v);

struct SnapshotAck {
  SnapshotVerdict verdict = SnapshotVerdict::kOk;
  uint64_t offset = 0;  // the next byte the receiver wants
};

struct SnapshotReceiverStats {
  uint64_t offers = 0;
  uint64_t resumed = 0;    // offers answered with a non-zero offset
  uint64_t restarted = 0;  // a partial transfer dropped for a new snapshot or sender
  uint64_t chunks = 0;     // accepted
  uint64_t bytes = 0;      // accepted
  uint64_t completed = 0;
  uint64_t refused_out_of_order = 0;
  uint64_t refused_old_term = 0;
  uint64_t refused_bad_checksum = 0;
  uint64_t refused_bad_image = 0;
  uint64_t refused_other = 0;  // kNoTransfer, kFailed
  uint64_t refused() const {
    return refused_out_of_order + refused_old_term + refused_bad_checksum + refused_bad_image + refused_other;
  }
};

// The follower's side of every transfer: one at a time (a follower follows one leader).
// Thread-safe; calls may block on the disk (one chunk's write).
class SnapshotReceiver {
 public:
  // `on_storage_failure` runs (on the calling transport thread, at most once) when writing a
  // transfer to disk fails for good (StorageFatalError): the node must stop, as for any failed
  // write or fsync. Every later offer is refused.
  explicit SnapshotReceiver(SnapshotStore& store, std::function<void(const std::string&)> on_storage_failure = {})
      : store_(store), on_storage_failure_(std::move(on_storage_failure)) {}

  SnapshotAck offer(NodeId from, const SnapshotOffer& offer);
  // kDone: *deliver is the kSnap message to hand to the core (its file waits as .recv).
  SnapshotAck chunk(NodeId from, const SnapshotChunk& chunk, Message* deliver);
  SnapshotReceiverStats stats() const;

 private:
  struct Transfer {
    NodeId from;
    Message msg;
    std::unique_ptr<IncomingSnapshot> file;
  };
  SnapshotAck refuse(SnapshotVerdict v, uint64_t offset);
  SnapshotAck storage_failed(const std::exception& e);

  SnapshotStore& store_;
  std::function<void(const std::string&)> on_storage_failure_;
  mutable std::mutex mu_;
  bool failed_ = false;          // guarded by mu_
  std::optional<Transfer> cur_;  // guarded by mu_
  Term highest_term_;            // guarded by mu_; of any offer accepted
  SnapshotReceiverStats stats_;  // guarded by mu_
};

// Deliberate defects for the simulator's planted-bug runs. Never set in production.
enum class SnapshotStreamBug : uint8_t {
  kNone = 0,
  kResumeFromSent,  // on reconnect, go on from what was sent instead of what was acknowledged
};

// The leader's side of one transfer, independent of the link it runs over. Any one thread.
class SnapshotSendSession {
 public:
  SnapshotSendSession(Message msg, std::unique_ptr<SnapshotFileReader> file, size_t chunk_bytes,
                      SnapshotStreamBug bug = SnapshotStreamBug::kNone);

  SnapshotOffer offer() const { return SnapshotOffer{msg_, file_->size()}; }
  const Message& message() const { return msg_; }
  uint64_t file_bytes() const { return file_->size(); }
  uint64_t position() const { return pos_; }
  bool all_sent() const { return pos_ >= file_->size(); }
  // The receiver's answer to an offer: continue from ack.offset.
  void resume_at(uint64_t offset);
  // Reads the next chunk at position() into *out (reusing its buffer) and advances.
  void next_chunk(SnapshotChunk* out);

 private:
  Message msg_;
  std::unique_ptr<SnapshotFileReader> file_;
  size_t chunk_bytes_;
  SnapshotStreamBug bug_;
  uint64_t pos_ = 0;
};

// Token bucket over bytes: reserve(n) returns how long to wait before sending n bytes so that
// the long-run rate stays at bytes_per_sec, with bursts of up to `burst_bytes`.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(uint64_t bytes_per_sec, uint64_t burst_bytes)
      : rate_(bytes_per_sec), burst_(burst_bytes) {}
  std::chrono::nanoseconds reserve(uint64_t n, Clock::time_point now);

 private:
  uint64_t rate_;
  uint64_t burst_;
  std::optional<Clock::time_point> next_;  // when everything reserved so far is paid for
};

}  // namespace balsa
