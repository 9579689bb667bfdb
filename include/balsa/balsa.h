// Balsa: a Raft consensus library. This umbrella header brings in what an application needs
// to run a replicated state machine:
//
//   StateMachine (runtime/state_machine.h)  the one interface you implement: apply a batch of
//                                           committed entries, save a snapshot to a stream,
//                                           restore from one.
//   Node, NodeOptions (runtime/node.h)      runs the Raft core with a durable log, a transport
//                                           and your state machine; propose(), read_index(),
//                                           transfer_leadership(), status().
//   DurableLog (storage/durable_log.h)      the log and snapshots on disk (a WAL that fsyncs
//                                           before anything is acknowledged).
//   PosixFileSystem (storage/fs.h)          the real disk behind DurableLog.
//   LoopbackTransport (transport/...)       nodes in one process; GrpcTransport for processes
//                                           on a network (transport/grpc_transport.h).
//   RawNode (core/raw_node.h)               the deterministic core alone, for embedding Raft
//                                           in your own event loop (no threads, no I/O).
//
// Threads: Node's work runs on its own loop thread; callbacks (propose, read_index) run there
// and must be quick. See docs/embedding.md.
#pragma once

#include "core/raw_node.h"
#include "core/types.h"
#include "runtime/node.h"
#include "runtime/state_machine.h"
#include "storage/byte_stream.h"
#include "storage/durable_log.h"
#include "storage/fs.h"
#include "transport/loopback_transport.h"
#include "transport/transport.h"
