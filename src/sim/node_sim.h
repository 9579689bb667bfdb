// The runtime simulator: the real balsa::Node (runtime/node.h), the real KV state machine
// (kv/kv_state_machine.h) and the real WAL + snapshot store (on SimFileSystem), all driven
// from one seed on virtual time. The Node runs on a simulated Executor; the peer network is a
// simulated Transport; clients issue put / get / delete / compare-and-swap through the same
// calls balsad's gRPC handlers make (Node::propose with an encoded KvCommand; Node::read_index
// then KvStateMachine::range).
//
// Faults: message loss and delay (per-link FIFO, as the Transport contract promises),
// symmetric and one-way partitions, an isolated leader, crashes that lose unsynced writes and
// restarts, failed fsyncs (the node must stop, then is restarted), leadership transfers.
//
// Snapshots stream chunk by chunk on a connection of their own that breaks at random
// (resumed from the receiver's offset) and now and then damages a chunk; the receiver must
// refuse exactly the damaged chunks and never see a chunk out of order or a file that fails
// verification.
//
// Checks: every client history is checked for linearizability (sim/linearizability.h); after
// healing, a leader must emerge, every client must get answers again, and all members must
// converge to the same applied index and the same HashKV. Watchers on every member are checked
// against the committed history (sim/watch_checker.h).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "runtime/node.h"

namespace balsa::sim {

struct NodeSimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  int clients = 4;
  int keys = 3;
  NodeBug planted_bug = NodeBug::kNone;
  SnapshotStreamBug snapshot_bug = SnapshotStreamBug::kNone;  // planted in the snapshot sender
  int watchers = 4;                    // watch clients (sim/watch_checker.h)
  bool plant_watch_skip = false;       // negative control: a resumed watch skips its first event
  uint64_t safety_ms = 6'000;    // simulated time with faults on
  uint64_t liveness_ms = 6'000;  // bound for recovery after healing
  std::ostream* trace = nullptr;     // every event, one line each
  std::ostream* timeline = nullptr;  // faults, leader changes, client progress
};

struct NodeSimResult {
  bool ok = true;
  std::string violation;
  uint64_t trace_hash = 0;
  uint64_t events = 0;
  uint64_t ops = 0;            // client operations in the checked history
  uint64_t indeterminate = 0;  // of which the outcome stayed unknown
  uint64_t failed = 0;         // operations refused without effect (not in the history)
  uint64_t crashes = 0;
  uint64_t fsync_failures = 0;
  uint64_t messages = 0;
  uint64_t snapshots_restored = 0;
  uint64_t snapshots_saved = 0;
  uint64_t snapshots_abandoned = 0;  // background images given up (compaction meanwhile)
  uint64_t check_steps = 0;
  // Streamed snapshots (snapshot_stream.h) over the simulated network.
  uint64_t snapshot_transfers = 0;        // completed
  uint64_t snapshot_connections = 0;      // offers made (a resume or a restart is one more)
  uint64_t snapshot_resumes = 0;          // offers answered with a non-zero offset
  uint64_t snapshot_corrupted_chunks = 0; // chunks the network damaged (must be refused)
  uint64_t snapshot_refused = 0;          // chunks or offers the receiver refused
  uint64_t watch_events = 0;     // watch events delivered and checked against the history
  uint64_t watch_resumes = 0;    // watches resumed from a past revision
  uint64_t watch_compacted = 0;  // resumes answered with compact_revision
};

NodeSimResult run_node_simulation(const NodeSimOptions& options);

}  // namespace balsa::sim
