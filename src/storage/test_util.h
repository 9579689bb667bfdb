// Helpers shared by the storage tests.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/codec.h"
#include "core/types.h"
#include "storage/crc32c.h"
#include "storage/wal.h"

namespace balsa::testing {

inline Entry make_entry(uint64_t index, uint64_t term = 1, std::string data = "") {
  if (data.empty()) data = "payload-" + std::to_string(index) + "-t" + std::to_string(term);
  return Entry{Term{term}, LogIndex{index}, EntryType::kNormal, std::move(data)};
}

inline std::vector<Entry> make_entries(uint64_t from, uint64_t to, uint64_t term = 1) {
  std::vector<Entry> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back(make_entry(i, term));
  return out;
}

// The data of entry i written by balsa_wal_writer (and checked by the SIGKILL test).
inline std::string writer_payload(uint64_t i) {
  std::string s = "entry-" + std::to_string(i) + "-";
  s.resize(32 + i % 200, static_cast<char>('a' + i % 26));
  return s;
}

// Encodes one WAL record exactly as wal.h specifies it (independently of wal.cc).
inline std::string encode_record(WalRecordType type, std::string_view payload) {
  std::string r(9, '\0');
  const auto len = static_cast<uint32_t>(payload.size());
  std::memcpy(r.data(), &len, 4);
  r[8] = static_cast<char>(type);
  r.append(payload);
  uint32_t crc = crc32c_extend(0, r.data(), 4);
  crc = crc32c_extend(crc, r.data() + 8, r.size() - 8);
  std::memcpy(r.data() + 4, &crc, 4);
  r.resize((r.size() + 7) & ~size_t{7}, '\0');
  return r;
}

// Offsets of every record, via a read-only open.
struct RecordPos {
  std::string file;
  uint64_t offset;
  WalRecordType type;
  uint64_t index;  // entry index, or 0
};
inline std::vector<RecordPos> record_positions(FileSystem& fs, const std::string& dir) {
  std::vector<RecordPos> out;
  WalOptions ro;
  ro.read_only = true;
  Wal::open(fs, dir, ro, [&](const WalRecordView& v) {
    out.push_back({v.file, v.offset, v.type, v.entry ? v.entry->index.value : 0});
  });
  return out;
}

// A temporary directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/balsa-storage-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace balsa::testing
