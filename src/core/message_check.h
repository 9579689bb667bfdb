// Structural checks of a message from the network, before any state is touched: a message that
// fails them is forged or corrupt and is refused (and counted), never acted on.
#pragma once

#include "core/types.h"

namespace balsa {

// Requests forwarded to the leader travel without a term.
inline bool termless(MessageType t) {
  return t == MessageType::kProp || t == MessageType::kReadIndex || t == MessageType::kTransferLeader;
}

// Messages that must wait until the Ready that produced them is durable: a vote (the voter's
// term and vote), a candidate's request (its own vote), and every reply that acknowledges log
// state. Only the leader's replication traffic and stateless probes leave immediately; the
// leader's own appends may race its disk write because it counts itself only once persisted.
bool needs_persist(MessageType t);

// Internally consistent: terms and indexes possible, entries contiguous, configuration entries
// decodable, snapshots with a valid configuration.
bool message_valid(const Message& m);

}  // namespace balsa
