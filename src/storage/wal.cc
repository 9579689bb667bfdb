#include "storage/wal.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "core/assert.h"
#include "core/codec.h"
#include "storage/crc32c.h"
#include "storage/fixed_le.h"

namespace balsa {
namespace {

constexpr char kMagic[8] = {'B', 'A', 'L', 'S', 'A', 'W', 'A', 'L'};
constexpr uint32_t kVersion = 2;
constexpr uint64_t kHeaderBytes = 40;
constexpr uint64_t kRecordHeaderBytes = 9;

uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

using fixed_le::get32;
using fixed_le::get64;
using fixed_le::put32;
using fixed_le::put64;

std::string segment_header(uint64_t seq, LogIndex first) {
  std::string h(kMagic, 8);
  put32(h, kVersion);
  put32(h, 0);
  put64(h, seq);
  put64(h, first.value);
  put32(h, crc32c(h));
  put32(h, 0);
  return h;
}

uint32_t record_crc(const char* rec, uint32_t len) {
  const uint32_t c = crc32c_extend(0, rec, 4);
  return crc32c_extend(c, rec + 8, 1 + len);
}

void encode_record(std::string& out, WalRecordType type, std::string_view payload) {
  const size_t start = out.size();
  put32(out, static_cast<uint32_t>(payload.size()));
  put32(out, 0);
  out.push_back(static_cast<char>(type));
  out.append(payload);
  const uint32_t crc = record_crc(out.data() + start, static_cast<uint32_t>(payload.size()));
  std::memcpy(out.data() + start + 4, &crc, 4);
  out.resize(start + align8(out.size() - start), '\0');
}

// The seal that closes a segment: its sequence number, its own offset (the end of the
// segment's other records) and the log's last index at that point.
struct Seal {
  uint64_t seq = 0;
  uint64_t offset = 0;
  uint64_t last_index = 0;
};

std::string encode_seal(const Seal& seal) {
  codec::Writer w;
  w.u64(seal.seq);
  w.u64(seal.offset);
  w.u64(seal.last_index);
  return w.out();
}

std::optional<Seal> decode_seal(std::string_view payload) {
  codec::Reader r(payload);
  Seal seal;
  if (!r.u64(&seal.seq) || !r.u64(&seal.offset) || !r.u64(&seal.last_index) || !r.done())
    return std::nullopt;
  return seal;
}

// A record that passed its structural checks (not yet its payload decode).
struct RawRecord {
  WalRecordType type;
  std::string_view payload;
  uint64_t next;  // offset of the following record
};

// Checks the record at `pos`; on failure sets *why and returns nullopt. An all-zero header
// is reported through *end_marker.
std::optional<RawRecord> parse_record(std::string_view data, uint64_t pos, bool* end_marker,
                                      std::string* why) {
  *end_marker = false;
  if (data.size() - pos < kRecordHeaderBytes) {
    *why = "truncated record header";
    return std::nullopt;
  }
  const char* p = data.data() + pos;
  const uint32_t len = get32(p);
  const uint32_t crc = get32(p + 4);
  const auto type = static_cast<uint8_t>(p[8]);
  if (len == 0 && crc == 0 && type == 0) {
    *end_marker = true;
    *why = "zeroed record header";
    return std::nullopt;
  }
  if (type < 1 || type > 5) {
    *why = fmt::format("invalid record type {}", type);
    return std::nullopt;
  }
  if (len > data.size() - pos - kRecordHeaderBytes) {
    *why = fmt::format("record length {} runs past the end of the file", len);
    return std::nullopt;
  }
  if (record_crc(p, len) != crc) {
    *why = "record checksum mismatch";
    return std::nullopt;
  }
  const uint64_t end = pos + kRecordHeaderBytes + len;
  const uint64_t next = align8(end);
  // A record is complete only with its padding: a write torn inside the padding leaves the
  // file ending off the 8-byte grid, and appending there would put every later record where
  // recovery never looks (the cause of the "snapshot the store does not hold" refusal).
  if (next > data.size()) {
    *why = "record padding runs past the end of the file";
    return std::nullopt;
  }
  for (uint64_t i = end; i < next; ++i) {
    if (data[i] != 0) {
      *why = "non-zero record padding";
      return std::nullopt;
    }
  }
  return RawRecord{static_cast<WalRecordType>(type), std::string_view(p + 9, len), next};
}

// The preallocated tail of the last segment is scanned whole (tens of MiB): compare in blocks,
// which memcmp vectorizes, rather than byte by byte.
bool all_zero(std::string_view s) {
  static constexpr char kZeros[4096] = {};
  size_t i = 0;
  for (; i + sizeof kZeros <= s.size(); i += sizeof kZeros) {
    if (std::memcmp(s.data() + i, kZeros, sizeof kZeros) != 0) return false;
  }
  return std::memcmp(s.data() + i, kZeros, s.size() - i) == 0;
}

// Is there a valid record anywhere after `pos` (at an 8-byte boundary)? If so, the damage at
// `pos` is not a torn tail: later data was written, and may have been acknowledged.
bool valid_record_after(std::string_view data, uint64_t pos) {
  bool end_marker;
  std::string why;
  for (uint64_t q = align8(pos + 1); q + kRecordHeaderBytes <= data.size(); q += 8) {
    if (data[q + 8] == 0) continue;  // type 0: cannot be a record; skips zeros quickly
    if (parse_record(data, q, &end_marker, &why)) return true;
  }
  return false;
}

uint64_t nonzero_extent(std::string_view data, uint64_t pos) {
  uint64_t last = data.size();
  while (last > pos && data[last - 1] == 0) --last;
  return last - pos;
}

// Replays records into the recovered state, enforcing the log's invariants.
class Replayer {
 public:
  explicit Replayer(const WalVisitor& visit) : visit_(visit) {}

  void start_first_segment(LogIndex first) {
    base_ = last_ = first - 1;
  }

  // Applies one verified record. Returns an error message for a semantic violation.
  std::optional<std::string> apply(const std::string& file, uint64_t offset, const RawRecord& r) {
    // The view is only filled when someone looks: replay speed matters.
    WalRecordView view;
    if (visit_) {
      view.file = file;
      view.offset = offset;
      view.type = r.type;
    }
    switch (r.type) {
      case WalRecordType::kEntry: {
        auto e = codec::decode<Entry>(r.payload);
        if (!e) return "undecodable entry";
        if (e->index != last_ + 1)
          return fmt::format("entry index {} does not follow index {}", e->index.value, last_.value);
        entries_.push_back(std::move(*e));
        last_ = entries_.back().index;
        view.entry = &entries_.back();
        break;
      }
      case WalRecordType::kHardState: {
        auto hs = codec::decode<HardState>(r.payload);
        if (!hs) return "undecodable hard state";
        if (hs->term < hs_.term) return fmt::format("hard state term goes back to {}", hs->term.value);
        hs_ = *hs;
        view.hard_state = &hs_;
        break;
      }
      case WalRecordType::kTruncate: {
        codec::Reader rd(r.payload);
        uint64_t from = 0;
        if (!rd.u64(&from) || !rd.done() || from == 0) return "undecodable truncate record";
        if (from > last_.value + 1)
          return fmt::format("truncate from {} is beyond the log end {}", from, last_.value);
        if (snapshot_ && from <= snapshot_->index.value)
          return fmt::format("truncate from {} is at or below the snapshot {}", from,
                             snapshot_->index.value);
        if (from <= hs_.commit.value)
          return fmt::format("truncate from {} would drop committed entries (commit {})", from,
                             hs_.commit.value);
        if (from - 1 < base_.value) {
          entries_.clear();
          base_ = LogIndex{from - 1};
        } else {
          entries_.resize(from - 1 - base_.value);
        }
        last_ = LogIndex{from - 1};
        view.truncate_from = LogIndex{from};
        break;
      }
      case WalRecordType::kSnapshot: {
        auto md = codec::decode<SnapshotMetadata>(r.payload);
        if (!md) return "undecodable snapshot marker";
        if (snapshot_ && md->index < snapshot_->index)
          return fmt::format("snapshot marker goes back from {} to {}", snapshot_->index.value,
                             md->index.value);
        if (md->index >= last_) {
          entries_.clear();
          base_ = last_ = md->index;
        } else if (md->index > base_) {
          entries_.erase(entries_.begin(),
                         entries_.begin() + static_cast<std::ptrdiff_t>(md->index - base_));
          base_ = md->index;
        }
        snapshot_ = *md;
        view.snapshot = &*snapshot_;
        break;
      }
      case WalRecordType::kSeal: {
        // Checked against the segment by the caller (it knows the sequence and position).
        auto seal = decode_seal(r.payload);
        if (!seal) return "undecodable seal record";
        if (seal->last_index != last_.value)
          return fmt::format("seal says the log ends at {} but it ends at {}", seal->last_index,
                             last_.value);
        view.sealed_last = LogIndex{seal->last_index};
        break;
      }
    }
    if (visit_) visit_(view);
    return std::nullopt;
  }

  LogIndex last() const { return last_; }
  LogIndex base() const { return base_; }
  const HardState& hard_state() const { return hs_; }
  const std::optional<SnapshotMetadata>& snapshot() const { return snapshot_; }
  std::vector<Entry> take_entries() { return std::move(entries_); }

 private:
  const WalVisitor& visit_;
  LogIndex base_;  // index just before entries_.front()
  LogIndex last_;
  std::vector<Entry> entries_;  // erased at the front only for snapshot markers (rare)
  HardState hs_;
  std::optional<SnapshotMetadata> snapshot_;
};

}  // namespace

std::string wal_segment_name(uint64_t seq, LogIndex first) {
  return fmt::format("{:016x}-{:016x}.wal", seq, first.value);
}

bool parse_wal_segment_name(const std::string& name, uint64_t* seq, LogIndex* first) {
  if (name.size() != 37 || name[16] != '-' || name.compare(33, 4, ".wal") != 0) return false;
  uint64_t f = 0;
  if (!fixed_le::parse_hex(std::string_view(name).substr(0, 16), seq) ||
      !fixed_le::parse_hex(std::string_view(name).substr(17, 16), &f))
    return false;
  *first = LogIndex{f};
  return true;
}

Wal::Wal(FileSystem& fs, std::string dir, WalOptions options)
    : fs_(fs), dir_(std::move(dir)), options_(options) {}

Wal::~Wal() = default;

Wal::Opened Wal::open(FileSystem& fs, std::string dir, WalOptions options, const WalVisitor& visit) {
  if (!options.read_only) {
    try {
      fs.create_dirs(dir);
    } catch (const IoError& e) {
      throw StorageFatalError(std::string("balsa wal: cannot create ") + dir + ": " + e.what());
    }
  }
  std::vector<Segment> segments;
  bool removed_tmp = false;
  for (const std::string& name : fs.list(dir)) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      // A segment whose creation did not finish: it never held a record.
      if (!options.read_only) {
        try {
          fs.remove(path_join(dir, name));
        } catch (const IoError& e) {
          throw StorageFatalError(std::string("balsa wal: removing ") + path_join(dir, name) +
                                  " failed: " + e.what());
        }
        removed_tmp = true;
      }
      continue;
    }
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".wal") != 0) continue;
    Segment s;
    if (!parse_wal_segment_name(name, &s.seq, &s.first))
      throw StorageCorruptionError(path_join(dir, name), 0, "malformed segment file name");
    s.name = name;
    segments.push_back(std::move(s));
  }
  if (removed_tmp) {
    try {
      fs.sync_dir(dir);
    } catch (const IoError& e) {
      throw StorageFatalError(std::string("balsa wal: fsync of directory ") + dir +
                              " failed: " + e.what());
    }
  }
  std::sort(segments.begin(), segments.end(),
            [](const Segment& a, const Segment& b) { return a.seq < b.seq; });

  Opened out;
  Replayer replay(visit);
  std::unique_ptr<char[]> buffer;  // one segment at a time, reused
  uint64_t buffer_bytes = 0;
  uint64_t end_offset = 0;  // end of the log in the last segment
  bool last_sealed = false;  // the last segment was closed, but its successor never made it
  for (size_t k = 0; k < segments.size(); ++k) {
    const Segment& seg = segments[k];
    const std::string path = path_join(dir, seg.name);
    const bool last_segment = k + 1 == segments.size();
    auto corrupt = [&](uint64_t off, const std::string& why) {
      return StorageCorruptionError(path, off, why);
    };
    if (k > 0 && seg.seq != segments[k - 1].seq + 1)
      throw corrupt(0, fmt::format("segment sequence jumps from {} to {} (missing segment)",
                                   segments[k - 1].seq, seg.seq));
    // Mapped when this process owns the directory (a writable open): no copy into a buffer.
    // A read-only open (balsa-log, possibly beside a live node that may cut a segment) reads.
    const std::unique_ptr<File> f = fs.open(path, OpenMode::kRead);
    uint64_t size = f->size();
    std::string_view data = options.read_only ? std::string_view() : f->map(size);
    if (data.size() != size) {
      if (size > buffer_bytes) {
        buffer.reset(new char[size]);  // uninitialized: it is about to be overwritten
        buffer_bytes = size;
      }
      size = f->read_at(0, buffer.get(), size);
      data = std::string_view(buffer.get(), size);
    }
    if (data.size() < kHeaderBytes) throw corrupt(0, "segment header is truncated");
    if (std::memcmp(data.data(), kMagic, 8) != 0) throw corrupt(0, "bad segment magic");
    if (get32(data.data() + 32) != crc32c(std::string_view(data.data(), 32)))
      throw corrupt(32, "segment header checksum mismatch");
    if (get32(data.data() + 8) != kVersion)
      throw corrupt(8, fmt::format("unsupported format version {} (this build reads {})",
                                   get32(data.data() + 8), kVersion));
    if (get32(data.data() + 12) != 0 || get32(data.data() + 36) != 0)
      throw corrupt(12, "non-zero reserved header bytes");
    if (get64(data.data() + 16) != seg.seq)
      throw corrupt(16, fmt::format("header says sequence {}, the name says {}",
                                    get64(data.data() + 16), seg.seq));
    if (get64(data.data() + 24) != seg.first.value)
      throw corrupt(24, fmt::format("header says first index {}, the name says {}",
                                    get64(data.data() + 24), seg.first.value));
    if (k == 0) {
      replay.start_first_segment(seg.first);
    } else if (seg.first != replay.last() + 1) {
      throw corrupt(24, fmt::format("segment starts at index {} but the log before it ends at {}",
                                    seg.first.value, replay.last().value));
    }

    const std::string_view view = data;
    uint64_t pos = kHeaderBytes;
    bool sealed = false;
    while (pos < view.size()) {
      bool end_marker = false;
      std::string why;
      auto rec = parse_record(view, pos, &end_marker, &why);
      // Only zeros remain (preallocated space). That is the end of the log in the last
      // segment; a closed segment must have ended with its seal before this point.
      if ((end_marker || view.size() - pos < kRecordHeaderBytes) && all_zero(view.substr(pos))) {
        if (!last_segment)
          throw corrupt(pos, "closed segment ends without its seal record (its last records "
                             "were lost)");
        break;
      }
      if (!rec) {
        if (last_segment && !valid_record_after(view, pos)) {
          TornTail t;
          t.file = path;
          t.offset = pos;
          t.bytes_dropped = nonzero_extent(view, pos);
          t.reason = why;
          out.recovered.torn_tail = t;
          break;
        }
        throw corrupt(pos, why);
      }
      if (rec->type == WalRecordType::kSeal) {
        auto seal = decode_seal(rec->payload);
        if (seal && (seal->seq != seg.seq || seal->offset != pos))
          throw corrupt(pos, fmt::format("seal of segment {} at offset {} found in segment {} "
                                         "at offset {}",
                                         seal->seq, seal->offset, seg.seq, pos));
      }
      if (auto err = replay.apply(path, pos, *rec)) throw corrupt(pos, *err);
      pos = rec->next;
      if (rec->type == WalRecordType::kSeal) {
        // Nothing may follow a seal: the segment was complete and durable when it was written.
        if (!all_zero(view.substr(pos))) throw corrupt(pos, "data after the segment's seal");
        sealed = true;
        break;
      }
    }
    if (!last_segment && !sealed)
      throw corrupt(pos, "closed segment ends without its seal record (its last records were "
                         "lost)");
    end_offset = pos;
    last_sealed = sealed;
  }

  // Every index from 1 up must be accounted for: held as an entry or covered by the snapshot.
  const LogIndex covered = replay.snapshot() ? replay.snapshot()->index : LogIndex{0};
  if (replay.base() > covered) {
    throw StorageCorruptionError(path_join(dir, segments.front().name), 0,
                                 fmt::format("the log starts after index {} but no snapshot "
                                             "covers it (segments missing)",
                                             replay.base().value));
  }
  if (replay.hard_state().commit > replay.last()) {
    throw StorageCorruptionError(
        path_join(dir, segments.back().name), end_offset,
        fmt::format("hard state commit {} is beyond the last recovered entry {}; committed "
                    "entries are missing",
                    replay.hard_state().commit.value, replay.last().value));
  }

  out.recovered.hard_state = replay.hard_state();
  out.recovered.snapshot = replay.snapshot();
  if (options.read_only) {
    out.recovered.entries = replay.take_entries();
    return out;
  }

  std::unique_ptr<Wal> wal(new Wal(fs, dir, options));
  wal->last_index_ = replay.last();
  wal->hard_state_ = replay.hard_state();
  wal->snapshot_ = replay.snapshot();
  out.recovered.entries = replay.take_entries();
  if (segments.empty()) {
    wal->open_new_segment();
    wal->write_pending(true);
  } else if (last_sealed) {
    // The last segment was sealed (durably) but its successor was not created: create it.
    wal->segments_ = std::move(segments);
    wal->open_new_segment();
    wal->write_pending(true);
  } else {
    wal->segments_ = std::move(segments);
    const std::string path = path_join(dir, wal->segments_.back().name);
    try {
      wal->file_ = fs.open(path, OpenMode::kReadWrite);
      wal->offset_ = end_offset;
      wal->zeroed_to_ = end_offset;  // unknown beyond: zero again from here
      if (out.recovered.torn_tail) {
        // Zero the torn bytes so the next open sees a clean end here.
        wal->file_->truncate(end_offset);
        if (options.preallocate) wal->file_->allocate(options.segment_bytes);
        wal->file_->sync();
      } else if (options.preallocate && wal->file_->size() < options.segment_bytes) {
        // Written without preallocation before this start: preallocate now, or every append
        // would pay for growing the file.
        wal->file_->allocate(options.segment_bytes);
        wal->file_->sync();
      }
    } catch (const IoError& e) {
      wal->die("repairing " + path, e);
    }
  }
  out.wal = std::move(wal);
  return out;
}

void Wal::check_ok() const {
  if (failed_) throw StorageFatalError(fail_message_);
}

void Wal::die(const std::string& what, const std::exception& e) {
  failed_ = true;
  fail_message_ = fmt::format(
      "balsa wal: {} failed: {}. The WAL has stopped and will not write again; what is durable "
      "is unknown until restart and recovery.",
      what, e.what());
  throw StorageFatalError(fail_message_);
}

void Wal::append_record(WalRecordType type, std::string_view payload) {
  encode_record(pending_, type, payload);
}

void Wal::open_new_segment() {
  const uint64_t seq = segments_.empty() ? 1 : segments_.back().seq + 1;
  Segment seg{seq, last_index_ + 1, wal_segment_name(seq, last_index_ + 1)};
  const std::string path = path_join(dir_, seg.name);
  std::string step;
  try {
    if (file_) {
      // Seal the current segment and cut it there (so recovery need not scan its zeros), and
      // make both durable before the successor exists: a successor on disk proves its
      // predecessor complete, and recovery refuses a closed segment that lacks its seal.
      const Segment& cur = segments_.back();
      step = "closing " + path_join(dir_, cur.name);
      std::string seal;
      encode_record(seal, WalRecordType::kSeal,
                    encode_seal(Seal{cur.seq, offset_, last_index_.value}));
      file_->write_at(offset_, seal);
      file_->truncate(offset_ + seal.size());
      file_->sync();
      file_.reset();
    }
    step = "creating " + path;
    const std::string tmp = path + ".tmp";
    if (fs_.exists(tmp)) fs_.remove(tmp);
    auto f = fs_.open(tmp, OpenMode::kCreate);
    if (options_.preallocate) f->allocate(options_.segment_bytes);
    f->write_at(0, segment_header(seq, seg.first));
    f->sync();
    fs_.rename(tmp, path);
    fs_.sync_dir(dir_);
    file_ = std::move(f);
  } catch (const IoError& e) {
    die(step, e);
  }
  segments_.push_back(std::move(seg));
  offset_ = kHeaderBytes;
  zeroed_to_ = kHeaderBytes;
  // Carry the newest snapshot marker and hard state, so older segments can be deleted.
  std::string copies;
  if (snapshot_) encode_record(copies, WalRecordType::kSnapshot, codec::encode(*snapshot_));
  if (!hard_state_.empty()) encode_record(copies, WalRecordType::kHardState, codec::encode(hard_state_));
  pending_.insert(0, copies);
}

void Wal::write_pending(bool sync) {
  if (!pending_.empty()) {
    if (offset_ + pending_.size() > options_.segment_bytes && offset_ > kHeaderBytes) {
      open_new_segment();
    }
    const std::string path = path_join(dir_, segments_.back().name);
    BALSA_ASSERT(offset_ % 8 == 0 && pending_.size() % 8 == 0,
                 "wal: record at offset {} ({} bytes) in {} is off the 8-byte grid", offset_,
                 pending_.size(), path);
    try {
      zero_ahead(offset_ + pending_.size());
      file_->write_at(offset_, pending_);
    } catch (const IoError& e) {
      pending_.clear();
      die("writing " + path, e);
    }
    offset_ += pending_.size();
    pending_.clear();
  }
  if (sync) {
    try {
      file_->sync();
    } catch (const IoError& e) {
      die("fdatasync of " + path_join(dir_, segments_.back().name), e);
    }
  }
}

void Wal::zero_ahead(uint64_t end) {
  // fallocate leaves "unwritten" extents: the first write into each block makes the next
  // fdatasync also commit an extent conversion to the file system journal (on ext4 here ~160 µs
  // instead of ~90 µs). Writing real zeros a chunk ahead of the records converts a whole chunk
  // at a time, so most syncs only flush data. The zeros are beyond the log's end, where zeros
  // are what recovery expects, so losing them in a crash changes nothing.
  if (!options_.preallocate || options_.zero_ahead_bytes == 0 || end <= zeroed_to_) return;
  const uint64_t limit = std::max(options_.segment_bytes, end);
  const uint64_t to = std::min(limit, std::max(end, zeroed_to_ + options_.zero_ahead_bytes));
  static const std::string zeros(1 << 20, '\0');
  for (uint64_t at = zeroed_to_; at < to;) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), to - at);
    file_->write_at(at, std::string_view(zeros.data(), n));
    at += n;
  }
  zeroed_to_ = to;
}

void Wal::save(const HardState* hs, std::span<const Entry> entries, bool sync) {
  check_ok();
  const LogIndex snap = snapshot_index();
  size_t skip = 0;
  while (skip < entries.size() && entries[skip].index <= snap) ++skip;
  entries = entries.subspan(skip);
  if (!entries.empty()) {
    const LogIndex first = entries.front().index;
    if (first > last_index_ + 1)
      throw std::invalid_argument(fmt::format("wal save: entry {} leaves a gap after {}",
                                              first.value, last_index_.value));
    for (size_t i = 1; i < entries.size(); ++i) {
      if (entries[i].index != first + i)
        throw std::invalid_argument("wal save: entries are not contiguous");
    }
    if (first <= last_index_ && first <= hard_state_.commit)
      throw std::invalid_argument(fmt::format(
          "wal save: entry {} would overwrite a committed entry (commit {})", first.value,
          hard_state_.commit.value));
  }
  if (hs && hs->term < hard_state_.term)
    throw std::invalid_argument("wal save: hard state term goes back");

  pending_.clear();
  if (!entries.empty() && entries.front().index <= last_index_) {
    codec::Writer w;
    w.u64(entries.front().index.value);
    append_record(WalRecordType::kTruncate, w.out());
  }
  for (const Entry& e : entries) append_record(WalRecordType::kEntry, codec::encode(e));
  if (hs) append_record(WalRecordType::kHardState, codec::encode(*hs));
  write_pending(sync);
  if (!entries.empty()) last_index_ = entries.back().index;
  if (hs) hard_state_ = *hs;
}

void Wal::save_snapshot(const SnapshotMetadata& md, bool discard_after) {
  check_ok();
  if (snapshot_ && md.index < snapshot_->index)
    throw std::invalid_argument("wal save_snapshot: snapshot goes back");
  const bool truncate = discard_after && md.index < last_index_;
  if (truncate && md.index < hard_state_.commit)
    throw std::invalid_argument(fmt::format(
        "wal save_snapshot: discarding entries after {} would drop committed entries (commit {})",
        md.index.value, hard_state_.commit.value));
  pending_.clear();
  if (truncate) {
    codec::Writer w;
    w.u64(md.index.value + 1);
    append_record(WalRecordType::kTruncate, w.out());
  }
  append_record(WalRecordType::kSnapshot, codec::encode(md));
  write_pending(true);
  snapshot_ = md;
  if (md.index > last_index_ || truncate) last_index_ = md.index;
}

void Wal::release_to(LogIndex index) {
  check_ok();
  if (index > snapshot_index())
    throw std::invalid_argument(fmt::format(
        "wal release_to({}) beyond the snapshot marker {}", index.value, snapshot_index().value));
  size_t n = 0;
  while (n + 1 < segments_.size() && segments_[n + 1].first.value <= index.value + 1) ++n;
  if (n == 0) return;
  try {
    for (size_t i = 0; i < n; ++i) fs_.remove(path_join(dir_, segments_[i].name));
    fs_.sync_dir(dir_);
  } catch (const IoError& e) {
    die("releasing segments in " + dir_, e);
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
}

void Wal::sync() {
  check_ok();
  write_pending(true);
}

}  // namespace balsa
