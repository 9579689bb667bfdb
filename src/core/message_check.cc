#include "core/message_check.h"

#include "core/codec.h"
#include "core/confchange.h"

namespace balsa {

bool needs_persist(MessageType t) {
  switch (t) {
    case MessageType::kApp:
    case MessageType::kHeartbeat:
    case MessageType::kSnap:
    case MessageType::kTimeoutNow:
    case MessageType::kPreVote:
    case MessageType::kPreVoteResp:
    case MessageType::kProp:
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
    case MessageType::kTransferLeader:
      return false;
    case MessageType::kAppResp:
    case MessageType::kVote:
    case MessageType::kVoteResp:
    case MessageType::kHeartbeatResp:
      return true;
  }
  return true;
}

bool message_valid(const Message& m) {
  // Only requests forwarded to the leader travel without a term; anything else with term 0 is
  // forged or corrupt (and would otherwise reset our term).
  if (termless(m.type) != (m.term.value == 0)) return false;
  switch (m.type) {
    case MessageType::kApp: {
      if (m.log_term > m.term) return false;
      Term prev = m.log_term;
      for (size_t k = 0; k < m.entries.size(); ++k) {
        const Entry& e = m.entries[k];
        if (e.index != m.index + (k + 1) || e.term < prev || e.term > m.term) return false;
        if (e.type == EntryType::kConfChange) {
          // Followers adopt the configuration on append: it must be one they can use.
          auto ce = codec::decode<ConfEntry>(e.data);
          if (!ce || confchange::validate(ce->result) != ConfError::kOk) return false;
        }
        prev = e.term;
      }
      return true;
    }
    case MessageType::kVote:
    case MessageType::kPreVote:
      return m.log_term <= m.term;
    case MessageType::kSnap:
      return m.snapshot.metadata.index.value > 0 && m.snapshot.metadata.term <= m.term &&
             !m.snapshot.metadata.conf.voters.empty() &&
             confchange::validate(m.snapshot.metadata.conf) == ConfError::kOk;
    case MessageType::kProp:
      for (const Entry& e : m.entries)
        if (e.type != EntryType::kNormal) return false;  // conf changes are proposed locally
      return !m.entries.empty();
    case MessageType::kAppResp:
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kHeartbeat:
    case MessageType::kHeartbeatResp:
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
    case MessageType::kTimeoutNow:
    case MessageType::kTransferLeader:
      return true;
  }
  return false;
}

}  // namespace balsa
