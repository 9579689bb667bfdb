#include "kv/kv_state_machine.h"

#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "core/assert.h"

namespace balsa::kv {
namespace {
constexpr std::string_view kMagicV1 = "BALSASM1";  // no member section
constexpr std::string_view kMagic = "BALSASM2";

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void put_str(std::string* out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
void read_exact(ByteSource& in, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const size_t k = in.read(buf + got, n - got);
    if (k == 0) throw std::runtime_error("kv snapshot: truncated");
    got += k;
  }
}
uint64_t get_le(ByteSource& in, int bytes) {
  char b[8];
  read_exact(in, b, static_cast<size_t>(bytes));
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(b[i])} << (8 * i);
  return v;
}
std::string get_str(ByteSource& in) {
  const uint64_t n = get_le(in, 4);
  if (n > (1u << 20)) throw std::runtime_error("kv snapshot: member string too long");
  std::string s(n, '\0');
  read_exact(in, s.data(), n);
  return s;
}
}  // namespace

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
        if (cmd.has_member_attributes()) members_[cmd.member_attributes().member_id()] = cmd.member_attributes();
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

std::string KvStateMachine::image_header() const {
  std::string header(kMagic);
  const uint64_t applied = applied_.load(std::memory_order_acquire);
  for (int i = 0; i < 8; ++i) header.push_back(static_cast<char>(applied >> (8 * i)));
  put_u32(&header, static_cast<uint32_t>(members_.size()));
  for (const auto& [id, m] : members_) {
    for (int i = 0; i < 8; ++i) header.push_back(static_cast<char>(id >> (8 * i)));
    put_str(&header, m.name());
    put_u32(&header, static_cast<uint32_t>(m.client_urls_size()));
    for (const auto& u : m.client_urls()) put_str(&header, u);
  }
  return header;
}

void KvStateMachine::save_snapshot(ByteSink& out) {
  std::shared_lock lock(mu_);
  out.write(image_header());
  store_.save(out);
}

std::function<void(ByteSink&)> KvStateMachine::snapshot_image() {
  // Only the header and the image point are taken here, on the loop thread: the records are
  // encoded later, slice by slice under the shared lock, by the runtime's background writer.
  std::string header;
  MvccStore::ImagePoint at;
  {
    std::shared_lock lock(mu_);
    header = image_header();
    at = store_.image_point();
  }
  return [this, header = std::move(header), at](ByteSink& out) {
    out.write(header);
    try {
      store_.write_image(at, out, [this](const std::function<void()>& slice) {
        std::shared_lock lock(mu_);
        slice();
      });
    } catch (const MvccStore::ImageInvalidated& e) {
      throw SnapshotAbandoned(e.what());
    }
  };
}

void KvStateMachine::restore_snapshot(ByteSource& in, LogIndex index) {
  char header[16];
  size_t got = 0;
  while (got < sizeof(header)) {
    const size_t n = in.read(header + got, sizeof(header) - got);
    if (n == 0) throw std::runtime_error("kv snapshot: truncated header");
    got += n;
  }
  const std::string_view magic(header, 8);
  if (magic != kMagic && magic != kMagicV1) throw std::runtime_error("kv snapshot: bad magic");
  uint64_t applied = 0;
  for (int i = 0; i < 8; ++i) applied |= uint64_t{static_cast<unsigned char>(header[8 + i])} << (8 * i);
  if (applied != index.value) {
    throw std::runtime_error("kv snapshot: image taken at another index");
  }
  std::map<uint64_t, kvpb::MemberAttributes> members;
  if (magic == kMagic) {
    const uint64_t count = get_le(in, 4);
    if (count > 4096) throw std::runtime_error("kv snapshot: too many members");
    for (uint64_t k = 0; k < count; ++k) {
      kvpb::MemberAttributes m;
      m.set_member_id(get_le(in, 8));
      m.set_name(get_str(in));
      const uint64_t urls = get_le(in, 4);
      if (urls > 4096) throw std::runtime_error("kv snapshot: too many client URLs");
      for (uint64_t u = 0; u < urls; ++u) m.add_client_urls(get_str(in));
      members[m.member_id()] = std::move(m);
    }
  }
  MvccStore fresh(options_);
  fresh.restore(in);  // parse and validate outside the lock
  std::unique_lock lock(mu_);
  store_ = std::move(fresh);
  members_ = std::move(members);
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

std::vector<kvpb::MemberAttributes> KvStateMachine::members() const {
  std::shared_lock lock(mu_);
  std::vector<kvpb::MemberAttributes> out;
  for (const auto& [id, m] : members_) out.push_back(m);
  return out;
}

KvStateMachine::Revisions KvStateMachine::revisions() const {
  std::shared_lock lock(mu_);
  return {store_.current_revision(), store_.compact_revision(), applied_index()};
}

}  // namespace balsa::kv
