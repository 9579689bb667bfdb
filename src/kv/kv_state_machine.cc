#include "kv/kv_state_machine.h"

#include <mutex>
#include <stdexcept>
#include <utility>

#include "core/assert.h"

namespace balsa::kv {
namespace {
constexpr std::string_view kMagic = "BALSASM1";
}

KvStateMachine::KvStateMachine(MvccStore::Options options)
    : store_(options), options_(std::move(options)) {}

void KvStateMachine::apply(std::span<const Entry> entries, std::vector<std::string>* results) {
  kvpb::KvCommand cmd;
  for (const Entry& e : entries) {
    const uint64_t applied = applied_.load(std::memory_order_relaxed);
    BALSA_ASSERT(e.index.value == applied + 1, "kv: entry {} applied after {}", e.index.value,
                 applied);
    std::string out;
    if (e.type == EntryType::kNormal && !e.data.empty()) {
      kvpb::KvResult result;
      if (decode_command(e.data, &cmd)) {
        std::unique_lock lock(mu_);
        result = execute_command(store_, cmd);
        applied_.store(e.index.value, std::memory_order_release);
      } else {
        result.set_code(static_cast<int32_t>(errors::malformed_command().code));
        result.set_message(errors::malformed_command().message);
        applied_.store(e.index.value, std::memory_order_release);
      }
      out = encode_result(result);
    } else {
      applied_.store(e.index.value, std::memory_order_release);
    }
    results->push_back(std::move(out));
  }
}

LogIndex KvStateMachine::applied_index() const {
  return LogIndex{applied_.load(std::memory_order_acquire)};
}

void KvStateMachine::save_snapshot(ByteSink& out) {
  std::shared_lock lock(mu_);
  std::string header(kMagic);
  const uint64_t applied = applied_.load(std::memory_order_acquire);
  for (int i = 0; i < 8; ++i) header.push_back(static_cast<char>(applied >> (8 * i)));
  out.write(header);
  store_.save(out);
}

void KvStateMachine::restore_snapshot(ByteSource& in, LogIndex index) {
  char header[16];
  size_t got = 0;
  while (got < sizeof(header)) {
    const size_t n = in.read(header + got, sizeof(header) - got);
    if (n == 0) throw std::runtime_error("kv snapshot: truncated header");
    got += n;
  }
  if (std::string_view(header, 8) != kMagic) throw std::runtime_error("kv snapshot: bad magic");
  uint64_t applied = 0;
  for (int i = 0; i < 8; ++i) applied |= uint64_t{static_cast<unsigned char>(header[8 + i])} << (8 * i);
  if (applied != index.value) {
    throw std::runtime_error("kv snapshot: image taken at another index");
  }
  MvccStore fresh(options_);
  fresh.restore(in);  // parse and validate outside the lock
  std::unique_lock lock(mu_);
  store_ = std::move(fresh);
  applied_.store(index.value, std::memory_order_release);
}

Result KvStateMachine::range(const pb::RangeRequest& req, pb::RangeResponse* resp) const {
  std::shared_lock lock(mu_);
  return store_.range(req, resp);
}

Result KvStateMachine::hash_kv(int64_t revision, pb::HashKVResponse* resp) const {
  std::shared_lock lock(mu_);
  return store_.hash_kv(revision, resp);
}

Result KvStateMachine::events(std::string_view key, std::string_view range_end,
                              int64_t start_revision, int64_t end_revision, size_t limit,
                              std::vector<mvccpb::Event>* out) const {
  std::shared_lock lock(mu_);
  return store_.events(key, range_end, start_revision, end_revision, limit, out);
}

KvStateMachine::Revisions KvStateMachine::revisions() const {
  std::shared_lock lock(mu_);
  return {store_.current_revision(), store_.compact_revision(), applied_index()};
}

}  // namespace balsa::kv
