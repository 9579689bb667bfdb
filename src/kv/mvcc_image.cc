#include "kv/mvcc_store.h"

// MvccStore's snapshot image codec: save, write_image (point in time while the store changes)
// and restore. The format is described above MvccStore::save.

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "kv/crc32c.h"

namespace balsa::kv {
namespace {

// ---- Snapshot encoding helpers ------------------------------------------------------------------

class ChunkWriter {
 public:
  ChunkWriter(ByteSink& out, size_t chunk) : out_(out), chunk_(chunk) { buf_.reserve(chunk + 64); }
  void u8(uint8_t v) { put(&v, 1); }
  void u32(uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    put(b, 4);
  }
  void i64(int64_t x) {
    const auto v = static_cast<uint64_t>(x);
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    put(b, 8);
  }
  void bytes(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s);
  }
  void raw(std::string_view s) {
    if (s.size() >= chunk_) {  // large value: no copy through the buffer
      flush();
      crc_.update(s);
      out_.write(s);
      return;
    }
    put(s.data(), s.size());
  }
  // Hands everything buffered to the sink (no trailer).
  void flush_all() { flush(); }
  void finish() {
    flush();
    const uint32_t sum = crc_.value();
    unsigned char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(sum >> (8 * i));
    out_.write(std::string_view(reinterpret_cast<const char*>(b), 4));
  }

 private:
  void put(const void* p, size_t n) {
    buf_.append(static_cast<const char*>(p), n);
    if (buf_.size() >= chunk_) flush();
  }
  void flush() {
    if (buf_.empty()) return;
    crc_.update(buf_);
    out_.write(buf_);
    buf_.clear();
  }
  ByteSink& out_;
  size_t chunk_;
  std::string buf_;
  Crc32c crc_;
};

// One key of a snapshot image: the key, then the first `count` records of its history.
template <typename History>
void encode_key(ChunkWriter& w, std::string_view key, const History& h, size_t count) {
  w.bytes(key);
  w.u32(static_cast<uint32_t>(count));
  for (size_t k = 0; k < count; ++k) {
    const auto& r = h[k];
    w.i64(r.rev.main);
    w.i64(r.rev.sub);
    w.u8(r.tombstone ? 1 : 0);
    if (r.tombstone) continue;
    w.i64(r.create_revision);
    w.i64(r.version);
    w.i64(r.lease);
    w.bytes(r.value);
  }
}

class ChunkReader {
 public:
  explicit ChunkReader(ByteSource& in) : in_(in) {}
  uint8_t u8() {
    unsigned char b;
    read(&b, 1);
    return b;
  }
  uint32_t u32() {
    unsigned char b[4];
    read(b, 4);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{b[i]} << (8 * i);
    return v;
  }
  int64_t i64() {
    unsigned char b[8];
    read(b, 8);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{b[i]} << (8 * i);
    return static_cast<int64_t>(v);
  }
  std::string bytes(size_t max) {
    const uint32_t n = u32();
    if (n > max) throw std::runtime_error("kv snapshot: length field too large");
    std::string s(n, '\0');
    read(s.data(), n);
    return s;
  }
  uint32_t crc() const { return crc_.value(); }
  // Reads the trailing checksum without hashing it, then requires the end of the stream.
  uint32_t trailer() {
    unsigned char b[4];
    read_raw(b, 4);
    char extra;
    if (pos_ < buf_.size() || in_.read(&extra, 1) != 0) {
      throw std::runtime_error("kv snapshot: trailing bytes after the checksum");
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{b[i]} << (8 * i);
    return v;
  }

 private:
  void read(void* p, size_t n) {
    read_raw(p, n);
    crc_.update(std::string_view(static_cast<const char*>(p), n));
  }
  void read_raw(void* p, size_t n) {
    char* dst = static_cast<char*>(p);
    while (n > 0) {
      if (pos_ == buf_.size()) {
        buf_.resize(64 * 1024);
        const size_t got = in_.read(buf_.data(), buf_.size());
        if (got == 0) throw std::runtime_error("kv snapshot: truncated image");
        buf_.resize(got);
        pos_ = 0;
      }
      const size_t k = std::min(n, buf_.size() - pos_);
      std::memcpy(dst, buf_.data() + pos_, k);
      pos_ += k;
      dst += k;
      n -= k;
    }
  }
  ByteSource& in_;
  std::string buf_;
  size_t pos_ = 0;
  Crc32c crc_;
};

constexpr std::string_view kSnapshotMagicV1 = "BALSAKV1";  // no lease section
constexpr std::string_view kSnapshotMagic = "BALSAKV2";

void encode_leases(ChunkWriter& w, const std::vector<std::pair<int64_t, int64_t>>& leases) {
  w.i64(static_cast<int64_t>(leases.size()));
  for (const auto& [id, ttl] : leases) {
    w.i64(id);
    w.i64(ttl);
  }
}

}  // namespace

// ---- Snapshots ----------------------------------------------------------------------------------
//
// Image format, all integers little-endian, fixed width:
//   "BALSAKV2"
//   i64 current_revision, i64 compact_revision, u64 key_count
//   key_count times, keys in strictly increasing byte order:
//     u32 key_len, key bytes, u32 record_count (>= 1)
//     record_count times, revisions strictly increasing:
//       i64 main, i64 sub, u8 kind (0 = put, 1 = tombstone)
//       put only: i64 create_revision, i64 version, i64 lease, u32 value_len, value bytes
//   u64 lease_count, then lease_count times, ids strictly increasing: i64 id (!= 0), i64 ttl
//   u32 CRC-32C of every byte before it
// A lease's keys are not stored: they are the keys whose newest record names it, rebuilt on
// restore (and a live key naming a lease the image lacks is refused as corrupt).
// "BALSAKV1" (before leases) is the same without the lease section; it restores with no leases.
// It is written in chunks of about chunk_bytes (large values go straight through).

void MvccStore::save(ByteSink& out, size_t chunk_bytes) const {
  ChunkWriter w(out, std::max<size_t>(chunk_bytes, 64));
  w.raw(kSnapshotMagic);
  w.i64(current_rev_);
  w.i64(compact_rev_);
  w.i64(static_cast<int64_t>(index_.size()));
  for (const auto& [key, h] : index_) encode_key(w, key, h, h.size());
  encode_leases(w, image_point().leases);
  w.finish();
}

void MvccStore::write_image(const ImagePoint& at, ByteSink& out,
                            const std::function<void(const std::function<void()>&)>& under_lock,
                            size_t keys_per_slice) const {
  const int64_t r = at.revision;
  auto check = [&] {
    if (compact_rev_ != at.compact)
      throw ImageInvalidated(fmt::format("compacted at {} while the image at revision {} was written",
                                         compact_rev_, r));
  };
  // A key belongs to the image if it has a record at or before r; of it, only those records.
  auto visible = [r](const History& h) { return !h.empty() && h.front().rev.main <= r; };
  // Pass 1: the key count, which the format puts first. Keys only appear with newer records
  // and only compaction removes any, so the two passes see the same keys.
  int64_t keys = 0;
  std::string after;
  bool more = true;
  while (more) {
    under_lock([&] {
      check();
      auto it = after.empty() ? index_.begin() : index_.upper_bound(after);
      size_t n = 0;
      for (; it != index_.end() && n < keys_per_slice; ++it, ++n)
        if (visible(it->second)) ++keys;
      more = it != index_.end();
      if (n > 0) after = std::prev(it)->first;
    });
  }
  // Pass 2: the records, encoded under the lock into a slice, written outside it.
  ChunkWriter w(out, 64 * 1024);
  w.raw(kSnapshotMagic);
  w.i64(r);
  w.i64(at.compact);
  w.i64(keys);
  int64_t written = 0;
  after.clear();
  more = true;
  StringSink slice;
  while (more) {
    slice.out.clear();
    under_lock([&] {
      check();
      ChunkWriter sw(slice, 64 * 1024);  // encoding only; its checksum is not used
      auto it = after.empty() ? index_.begin() : index_.upper_bound(after);
      size_t n = 0;
      for (; it != index_.end() && n < keys_per_slice; ++it, ++n) {
        const History& h = it->second;
        if (!visible(h)) continue;
        size_t count = 0;
        while (count < h.size() && h[count].rev.main <= r) ++count;
        encode_key(sw, it->first, h, count);
        ++written;
      }
      sw.flush_all();
      more = it != index_.end();
      if (n > 0) after = std::prev(it)->first;
    });
    w.raw(slice.out);
  }
  if (written != keys) throw ImageInvalidated("the key set changed while the image was written");
  encode_leases(w, at.leases);
  w.finish();
}

void MvccStore::restore(ByteSource& in) {
  ChunkReader r(in);
  auto fail = [](const char* what) { throw std::runtime_error(std::string("kv snapshot: ") + what); };
  std::string magic(kSnapshotMagic.size(), '\0');
  for (char& c : magic) c = static_cast<char>(r.u8());
  if (magic != kSnapshotMagic && magic != kSnapshotMagicV1) fail("bad magic");
  const bool with_leases = magic == kSnapshotMagic;
  const int64_t current = r.i64();
  const int64_t compacted = r.i64();
  const int64_t keys = r.i64();
  if (current < 1 || compacted < -1 || compacted > current || keys < 0) fail("bad header");

  constexpr size_t kMaxBytes = size_t{1} << 31;
  Index index;
  size_t records = 0;
  for (int64_t i = 0; i < keys; ++i) {
    std::string key = r.bytes(kMaxBytes);
    if (key.empty() || (!index.empty() && !(index.rbegin()->first < key))) fail("keys out of order");
    const uint32_t n = r.u32();
    if (n == 0) fail("key without records");
    History h;
    h.reserve(n);
    for (uint32_t j = 0; j < n; ++j) {
      Record rec;
      rec.rev.main = r.i64();
      rec.rev.sub = r.i64();
      const uint8_t kind = r.u8();
      if (kind > 1) fail("bad record kind");
      rec.tombstone = kind == 1;
      if (!rec.tombstone) {
        rec.create_revision = r.i64();
        rec.version = r.i64();
        rec.lease = r.i64();
        rec.value = r.bytes(kMaxBytes);
        if (rec.version < 1 || rec.create_revision < 1 || rec.create_revision > rec.rev.main) {
          fail("bad record");
        }
      }
      if (rec.rev.main < 1 || rec.rev.main > current || rec.rev.sub < 0) fail("bad revision");
      if (!h.empty() && !(h.back().rev < rec.rev)) fail("revisions out of order");
      h.push_back(std::move(rec));
    }
    records += n;
    index.emplace_hint(index.end(), std::move(key), std::move(h));
  }
  LeaseTable leases;
  if (with_leases) {
    const int64_t n = r.i64();
    if (n < 0) fail("bad lease count");
    int64_t prev = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = r.i64();
      const int64_t ttl = r.i64();
      if (id == 0 || (i > 0 && id <= prev) || ttl > kMaxLeaseTtlSeconds) fail("bad lease");
      leases.grant(id, ttl);
      prev = id;
    }
    for (const auto& [key, h] : index) {
      const Record& last = h.back();
      if (!last.tombstone && last.lease != 0 && !leases.contains(last.lease)) {
        fail("key attached to a lease the image does not hold");
      }
    }
  }
  const uint32_t computed = r.crc();
  if (r.trailer() != computed) fail("checksum mismatch");

  index_ = std::move(index);
  current_rev_ = current;
  compact_rev_ = compacted;
  record_count_ = records;
  leases_ = std::move(leases);
  reattach_leases();
  if (options_.on_lease) options_.on_lease({LeaseChange::Kind::kReplaced, 0, 0});
}

bool MvccStore::operator==(const MvccStore& o) const {
  return current_rev_ == o.current_rev_ && compact_rev_ == o.compact_rev_ && index_ == o.index_ &&
         leases_ == o.leases_;
}

}  // namespace balsa::kv
