#include "runtime/snapshot_transfer.h"

#include <fmt/format.h>

#include "storage/errors.h"

namespace balsa {

bool connect_snapshot_streaming(Transport& transport, DurableLog& log, SnapshotReceiver& receiver) {
  SnapshotEndpoints e;
  // Called on a transport thread: only opens a file (the store allows that next to the loop).
  e.open = [&log](const SnapshotMetadata& md) { return log.snapshots().open_file(md); };
  e.receiver = &receiver;
  const bool streams = transport.set_snapshots(std::move(e));
  log.set_inline_snapshot_images(!streams);
  return streams;
}

void install_leader_snapshot(DurableLog& log, StateMachine& sm, const Snapshot& snap) {
  const SnapshotMetadata& md = snap.metadata;
  if (!log.install_received_snapshot(md)) {
    if (!log.inline_snapshot_images() && snap.data.empty()) {
      // The transport delivers a streamed kSnap only once its file is in: never store an
      // empty image in its place.
      throw StorageFatalError(fmt::format("the streamed snapshot at index {} term {} is not in {}",
                                          md.index.value, md.term.value, log.snapshots().dir()));
    }
    log.apply_snapshot(snap);  // not streamed: the image came inline in the message
  }
  auto reader = log.snapshots().open(md.index);  // verified, then streamed
  sm.restore_snapshot(*reader, md.index);
}

void restore_from_log_snapshot(DurableLog& log, StateMachine& sm) {
  const SnapshotMetadata md = log.snapshot_metadata();
  if (md.index.value == 0 || sm.applied_index() >= md.index) return;
  auto reader = log.snapshots().open(md.index);  // verified, then streamed
  sm.restore_snapshot(*reader, md.index);
}

}  // namespace balsa
