// The runtime's end of streamed snapshots (src/transport/snapshot_stream.h): what the node
// hands its transport, and how a snapshot from the leader is installed and restored. The Raft
// core never sees an image: its kSnap carries metadata only when the transport streams.
#pragma once

#include <memory>

#include "runtime/state_machine.h"
#include "storage/durable_log.h"
#include "transport/snapshot_stream.h"
#include "transport/transport.h"

namespace balsa {

// Offers streaming to `transport`. If it streams, the log stops inlining images (the core's
// kSnap messages carry metadata only) and the receiver takes incoming transfers into the
// log's snapshot store; if not, images stay inline. Returns whether it streams.
bool connect_snapshot_streaming(Transport& transport, DurableLog& log, SnapshotReceiver& receiver);

// A snapshot the core accepted from the leader (Ready::snapshot): the streamed file is moved
// into place (or the inline image stored), recorded in the WAL, and the state machine restores
// from the store as a stream, never from a string.
void install_leader_snapshot(DurableLog& log, StateMachine& sm, const Snapshot& snap);

// Restart: restores the state machine from the log's latest snapshot, streamed from the store.
void restore_from_log_snapshot(DurableLog& log, StateMachine& sm);

}  // namespace balsa
