#include "runtime/sessions.h"

#include <future>
#include <stdexcept>
#include <thread>

#include "core/codec.h"

namespace balsa {

namespace {

// Log payloads: a magic byte, a kind, then varints. Replies: a status byte, then the result.
constexpr char kMagic = '\xB5';
constexpr char kRegister = 'R';
constexpr char kCommand = 'C';
constexpr std::string_view kImageMagic = "BALSASS1";  // the session table's snapshot section

std::string reply(SessionStatus s, std::string_view result = {}) {
  std::string out(1, static_cast<char>(s));
  out.append(result);
  return out;
}

void read_exact(ByteSource& in, char* buf, size_t n) {
  while (n > 0) {
    const size_t got = in.read(buf, n);
    if (got == 0) throw std::runtime_error("session snapshot: image ends inside the session table");
    buf += got;
    n -= got;
  }
}

}  // namespace

const char* to_string(SessionStatus s) {
  switch (s) {
    case SessionStatus::kOk: return "ok";
    case SessionStatus::kSessionExpired: return "session expired";
    case SessionStatus::kStale: return "stale sequence number";
    case SessionStatus::kMalformed: return "not a session command";
  }
  return "unknown";
}

SessionStateMachine::SessionStateMachine(StateMachine& inner, SessionOptions options)
    : inner_(inner), options_(options) {
  if (options_.max_sessions == 0) throw std::invalid_argument("SessionOptions::max_sessions must be at least 1");
}

std::string SessionStateMachine::register_command() { return std::string{kMagic, kRegister}; }

std::string SessionStateMachine::command(uint64_t session, uint64_t seq, std::string_view payload) {
  codec::Writer w;
  w.out().push_back(kMagic);
  w.out().push_back(kCommand);
  w.u64(session);
  w.u64(seq);
  w.out().append(payload);
  return w.take();
}

SessionStateMachine::Reply SessionStateMachine::decode_reply(std::string_view value) {
  Reply r;
  if (value.empty() || static_cast<uint8_t>(value[0]) > static_cast<uint8_t>(SessionStatus::kMalformed)) return r;
  r.status = static_cast<SessionStatus>(value[0]);
  r.result = std::string(value.substr(1));
  return r;
}

void SessionStateMachine::touch(uint64_t id, Session& s, uint64_t index) {
  if (s.last_index != 0) by_last_index_.erase(s.last_index);
  s.last_index = index;
  by_last_index_[index] = id;
}

void SessionStateMachine::apply(std::span<const Entry> entries, std::vector<std::string>* results) {
  // Each entry's reply comes from the inner machine's result (a command applied now), from a
  // fixed reply (registration, refusal, a retry answered from memory), or from the reply of an
  // earlier entry of this batch (a retry of a command applied in the same batch).
  enum class Source : uint8_t { kPassThrough, kApplied, kFixed, kSameAs };
  struct Plan {
    Source source;
    size_t inner = 0;  // kPassThrough, kApplied: slot in the inner batch
    size_t same_as = 0;
    uint64_t session = 0, seq = 0;  // kApplied
    std::string fixed;
  };
  std::vector<Entry> batch;
  std::vector<Plan> plans;
  batch.reserve(entries.size());
  plans.reserve(entries.size());
  std::unordered_map<uint64_t, size_t> applied_in_batch;  // session -> plan of its last command

  std::lock_guard lk(mu_);
  auto empty_for_inner = [&](const Entry& e) { batch.push_back(Entry{e.term, e.index, EntryType::kNormal, {}}); };
  for (const Entry& e : entries) {
    if (e.type != EntryType::kNormal || e.data.empty()) {  // the leader's no-op, config changes
      plans.push_back(Plan{Source::kPassThrough, batch.size()});
      batch.push_back(e);
      continue;
    }
    Plan plan{Source::kFixed};
    const std::string_view data = e.data;
    if (data.size() == 2 && data[0] == kMagic && data[1] == kRegister) {
      const uint64_t id = e.index.value;
      Session& s = sessions_[id];
      touch(id, s, id);
      while (sessions_.size() > options_.max_sessions) {  // evict the least recently used
        const auto oldest = by_last_index_.begin();
        applied_in_batch.erase(oldest->second);
        sessions_.erase(oldest->second);
        by_last_index_.erase(oldest);
      }
      codec::Writer w;
      w.u64(id);
      plan.fixed = reply(SessionStatus::kOk, w.out());
    } else if (data.size() >= 2 && data[0] == kMagic && data[1] == kCommand) {
      codec::Reader r(data.substr(2));
      uint64_t id = 0, seq = 0;
      // The payload is what follows the two varints: re-encode them to find its offset.
      if (!r.u64(&id) || !r.u64(&seq) || seq == 0) {
        plan.fixed = reply(SessionStatus::kMalformed);
      } else {
        codec::Writer head;
        head.u64(id);
        head.u64(seq);
        const std::string_view payload = data.substr(2 + head.out().size());
        auto it = sessions_.find(id);
        if (it == sessions_.end()) {
          plan.fixed = reply(SessionStatus::kSessionExpired);
        } else if (seq < it->second.last_seq) {
          plan.fixed = reply(SessionStatus::kStale);
        } else if (seq == it->second.last_seq) {
          ++duplicates_;
          touch(id, it->second, e.index.value);
          if (auto same = applied_in_batch.find(id); same != applied_in_batch.end()) {
            plan.source = Source::kSameAs;
            plan.same_as = same->second;
          } else {
            plan.fixed = it->second.last_result;
          }
        } else {
          it->second.last_seq = seq;
          touch(id, it->second, e.index.value);
          applied_in_batch[id] = plans.size();
          plans.push_back(Plan{Source::kApplied, batch.size(), 0, id, seq});
          batch.push_back(Entry{e.term, e.index, EntryType::kNormal, std::string(payload)});
          continue;
        }
      }
    } else {
      plan.fixed = reply(SessionStatus::kMalformed);
    }
    empty_for_inner(e);
    plans.push_back(std::move(plan));
  }

  std::vector<std::string> inner_results;
  inner_results.reserve(batch.size());
  inner_.apply(batch, &inner_results);
  if (inner_results.size() != batch.size())
    throw std::logic_error("SessionStateMachine: the inner state machine must return one result per entry");

  const size_t base = results->size();
  for (Plan& p : plans) {
    switch (p.source) {
      case Source::kPassThrough: results->push_back(std::move(inner_results[p.inner])); break;
      case Source::kApplied: {
        results->push_back(reply(SessionStatus::kOk, inner_results[p.inner]));
        auto it = sessions_.find(p.session);  // evicted later in this batch: nothing to remember
        if (it != sessions_.end() && it->second.last_seq == p.seq) it->second.last_result = results->back();
        break;
      }
      case Source::kFixed: results->push_back(std::move(p.fixed)); break;
      case Source::kSameAs: results->push_back((*results)[base + p.same_as]); break;
    }
  }
}

// Section layout: magic, u64 LE byte count of the table, the table (varint count, then per
// session: id, last_seq, last_index, last_result), then the inner machine's image.
std::string SessionStateMachine::encode_sessions() const {
  codec::Writer w;
  w.u64(sessions_.size());
  for (const auto& [id, s] : sessions_) {
    w.u64(id);
    w.u64(s.last_seq);
    w.u64(s.last_index);
    w.bytes(s.last_result);
  }
  std::string out(kImageMagic);
  const uint64_t n = w.out().size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(w.out());
  return out;
}

void SessionStateMachine::save_snapshot(ByteSink& out) {
  {
    std::lock_guard lk(mu_);
    out.write(encode_sessions());
  }
  inner_.save_snapshot(out);
}

std::function<void(ByteSink&)> SessionStateMachine::snapshot_image() {
  std::function<void(ByteSink&)> inner = inner_.snapshot_image();
  if (!inner) return {};
  std::string table;
  {
    std::lock_guard lk(mu_);
    table = encode_sessions();  // as of applied_index(), like the inner image
  }
  return [table = std::move(table), inner = std::move(inner)](ByteSink& out) {
    out.write(table);
    inner(out);
  };
}

void SessionStateMachine::restore_snapshot(ByteSource& in, LogIndex index) {
  char head[16];
  read_exact(in, head, sizeof head);
  if (std::string_view(head, 8) != kImageMagic)
    throw std::runtime_error("session snapshot: the image does not start with a session table (BALSASS1)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(head[8 + i])) << (8 * i);
  if (n > (1ull << 34)) throw std::runtime_error("session snapshot: implausible session table size");
  std::string table(n, '\0');
  read_exact(in, table.data(), n);
  codec::Reader r(table);
  uint64_t count = 0;
  if (!r.u64(&count)) throw std::runtime_error("session snapshot: malformed session table");
  std::unordered_map<uint64_t, Session> sessions;
  std::map<uint64_t, uint64_t> by_last;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t id = 0;
    Session s;
    if (!r.u64(&id) || !r.u64(&s.last_seq) || !r.u64(&s.last_index) || !r.bytes(&s.last_result))
      throw std::runtime_error("session snapshot: malformed session table");
    by_last[s.last_index] = id;
    sessions[id] = std::move(s);
  }
  if (!r.done()) throw std::runtime_error("session snapshot: bytes after the session table");
  inner_.restore_snapshot(in, index);
  std::lock_guard lk(mu_);
  sessions_ = std::move(sessions);
  by_last_index_ = std::move(by_last);
}

size_t SessionStateMachine::session_count() const {
  std::lock_guard lk(mu_);
  return sessions_.size();
}

uint64_t SessionStateMachine::duplicates() const {
  std::lock_guard lk(mu_);
  return duplicates_;
}

SessionClient::SessionClient(Node& node, Options options) : node_(node), options_(options) {}

std::pair<NodeError, std::string> SessionClient::propose_until(const std::string& data,
                                                               std::chrono::steady_clock::time_point until,
                                                               int* attempts) {
  while (true) {
    std::promise<CommandResult> done;
    auto result = done.get_future();
    node_.propose(data, [&done](CommandResult r) { done.set_value(std::move(r)); });
    CommandResult r = result.get();
    ++*attempts;
    switch (r.error) {
      case NodeError::kOk: return {NodeError::kOk, std::move(r.value)};
      case NodeError::kTooLarge:
      case NodeError::kStopped: return {r.error, {}};  // retrying cannot help
      case NodeError::kNotLeader:
      case NodeError::kNoLeader:
      case NodeError::kDropped:
      case NodeError::kLeadershipLost:
      case NodeError::kTimeout:  // outcome unknown: the session makes the retry safe
        break;
    }
    if (std::chrono::steady_clock::now() + options_.retry_backoff >= until) return {r.error, {}};
    std::this_thread::sleep_for(options_.retry_backoff);
  }
}

SessionClient::Result SessionClient::call(std::string_view payload) {
  const auto until = std::chrono::steady_clock::now() + options_.deadline;
  Result out;
  while (true) {
    if (session_ == 0) {
      auto [err, value] = propose_until(SessionStateMachine::register_command(), until, &out.attempts);
      if (err != NodeError::kOk) {
        out.error = err;
        return out;
      }
      const auto reply = SessionStateMachine::decode_reply(value);
      codec::Reader r(reply.result);
      if (reply.status != SessionStatus::kOk || !r.u64(&session_) || session_ == 0) {
        out.status = reply.status == SessionStatus::kOk ? SessionStatus::kMalformed : reply.status;
        session_ = 0;
        return out;
      }
      next_seq_ = 1;
    }
    // A number is never reused for another payload, even when this call gives up: the command
    // may still apply, and a later call must not be answered with its result.
    const uint64_t seq = next_seq_++;
    auto [err, value] = propose_until(SessionStateMachine::command(session_, seq, payload), until, &out.attempts);
    if (err != NodeError::kOk) {
      out.error = err;
      return out;
    }
    auto reply = SessionStateMachine::decode_reply(value);
    if (reply.status == SessionStatus::kSessionExpired && std::chrono::steady_clock::now() < until) {
      session_ = 0;  // evicted: it did not apply under that session; register and send it again
      continue;
    }
    out.status = reply.status;
    out.value = std::move(reply.result);
    return out;
  }
}

SessionClient::Result SessionClient::propose_raw(uint64_t seq, std::string_view payload) {
  Result out;
  auto [err, value] = propose_until(SessionStateMachine::command(session_, seq, payload),
                                    std::chrono::steady_clock::now() + options_.deadline, &out.attempts);
  out.error = err;
  if (err == NodeError::kOk) {
    auto reply = SessionStateMachine::decode_reply(value);
    out.status = reply.status;
    out.value = std::move(reply.result);
  }
  return out;
}

}  // namespace balsa
