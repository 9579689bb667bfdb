// Exactly-once client sessions (Raft thesis §6.3), as a wrapper around the user's state machine.
//
// A proposal whose outcome is unknown (a timeout, a leader change) must be retried, and a retry
// must not apply twice. A client registers a session (a command through the log: its id is the
// index the registration applied at, so every member agrees on it) and then numbers its
// commands 1, 2, 3, ... SessionStateMachine remembers each session's last sequence number and
// its result: a retry of the last command returns the remembered result without applying it
// again; an older number is refused as stale (its answer was already delivered). A client has
// one command in flight at a time (retries of it included).
//
// Sessions are part of the snapshot image. They expire by a rule decided through the log, so
// every member agrees: at most max_sessions are kept, and a registration beyond that evicts the
// session whose last command applied longest ago. A command of an unknown or evicted session is
// refused (kSessionExpired) and not applied: the client registers again; the command's outcome
// is then known (it did not apply under the new session) but an earlier attempt of it may
// have applied under the old one before the eviction, which is why max_sessions should be far
// above the number of live clients.
//
// SessionClient is the client side: it registers, numbers commands and retries through a Node
// until a definite answer or its deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/node.h"
#include "runtime/state_machine.h"

namespace balsa {

struct SessionOptions {
  size_t max_sessions = 100'000;
};

enum class SessionStatus : uint8_t {
  kOk = 0,              // applied (now, or by an earlier attempt of the same command)
  kSessionExpired = 1,  // no such session (never registered, or evicted): not applied
  kStale = 2,           // a sequence number below the session's last: not applied
  kMalformed = 3,       // not a session command: not applied
};
const char* to_string(SessionStatus s);

class SessionStateMachine final : public StateMachine {
 public:
  // `inner` sees every index: commands of sessions unwrapped, and duplicates, refusals and
  // registrations as empty entries (which it must treat as no-ops, as it does the leader's).
  explicit SessionStateMachine(StateMachine& inner, SessionOptions options = {});

  // The log payloads a client proposes.
  static std::string register_command();
  static std::string command(uint64_t session, uint64_t seq, std::string_view payload);
  // Decodes what propose() completed with for one of those commands: the status, and the
  // inner state machine's result (kOk) or the new session's id (registration).
  struct Reply {
    SessionStatus status = SessionStatus::kMalformed;
    std::string result;
    uint64_t session = 0;
  };
  static Reply decode_reply(std::string_view value);

  // StateMachine
  void apply(std::span<const Entry> entries, std::vector<std::string>* results) override;
  LogIndex applied_index() const override { return inner_.applied_index(); }
  void save_snapshot(ByteSink& out) override;
  std::function<void(ByteSink&)> snapshot_image() override;
  void restore_snapshot(ByteSource& in, LogIndex index) override;

  size_t session_count() const;
  uint64_t duplicates() const;  // retries answered from a session's memory

 private:
  struct Session {
    uint64_t last_seq = 0;
    std::string last_result;  // the reply to last_seq (encoded)
    uint64_t last_index = 0;  // where the session's last command (or registration) applied
  };
  std::string encode_sessions() const;  // caller holds mu_
  void touch(uint64_t id, Session& s, uint64_t index);

  StateMachine& inner_;
  const SessionOptions options_;
  mutable std::mutex mu_;  // the table is read by snapshot writers on other threads
  std::unordered_map<uint64_t, Session> sessions_;
  std::map<uint64_t, uint64_t> by_last_index_;  // last_index -> session id (for eviction)
  uint64_t duplicates_ = 0;
};

// The client side of a session, over a Node. Blocking, for one thread at a time.
class SessionClient {
 public:
  struct Options {
    std::chrono::milliseconds deadline{10'000};  // per call, over all its retries
    std::chrono::milliseconds retry_backoff{50};
  };
  explicit SessionClient(Node& node, Options options);
  explicit SessionClient(Node& node) : SessionClient(node, Options{}) {}

  struct Result {
    NodeError error = NodeError::kOk;  // kOk, or the last error when the deadline passed
    SessionStatus status = SessionStatus::kOk;
    std::string value;                 // the inner state machine's result
    int attempts = 0;
    bool ok() const { return error == NodeError::kOk && status == SessionStatus::kOk; }
  };
  // Registers (on the first call, or after kSessionExpired) and applies `payload` once.
  Result call(std::string_view payload);
  uint64_t session() const { return session_; }
  uint64_t last_seq() const { return next_seq_ - 1; }  // the number the last call used

  // For tests: propose attempt `seq` of this session directly (as a lost reply's retry would).
  Result propose_raw(uint64_t seq, std::string_view payload);

 private:
  // Proposes `data` until a definite outcome or `until`.
  std::pair<NodeError, std::string> propose_until(const std::string& data,
                                                  std::chrono::steady_clock::time_point until,
                                                  int* attempts);
  Node& node_;
  const Options options_;
  uint64_t session_ = 0;
  uint64_t next_seq_ = 1;
};

}  // namespace balsa
