#include "core/types.h"

namespace balsa {

const char* to_string(MessageType t) {
  switch (t) {
    case MessageType::kApp: return "App";
    case MessageType::kAppResp: return "AppResp";
    case MessageType::kVote: return "Vote";
    case MessageType::kVoteResp: return "VoteResp";
    case MessageType::kPreVote: return "PreVote";
    case MessageType::kPreVoteResp: return "PreVoteResp";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatResp: return "HeartbeatResp";
    case MessageType::kSnap: return "Snap";
    case MessageType::kProp: return "Prop";
    case MessageType::kReadIndex: return "ReadIndex";
    case MessageType::kReadIndexResp: return "ReadIndexResp";
    case MessageType::kTimeoutNow: return "TimeoutNow";
    case MessageType::kTransferLeader: return "TransferLeader";
  }
  return "?";
}

const char* to_string(ConfChangeType t) {
  switch (t) {
    case ConfChangeType::kAddVoter: return "add-voter";
    case ConfChangeType::kAddLearner: return "add-learner";
    case ConfChangeType::kRemoveNode: return "remove";
    case ConfChangeType::kPromote: return "promote";
    case ConfChangeType::kAddWitness: return "add-witness";
  }
  return "?";
}

}  // namespace balsa
