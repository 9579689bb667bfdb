#include "storage/snapshot_store.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/codec.h"
#include "storage/crc32c.h"
#include "storage/fixed_le.h"

namespace balsa {
namespace {

constexpr char kMagic[8] = {'B', 'A', 'L', 'S', 'A', 'S', 'N', 'P'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kTrailerBytes = 16;
constexpr uint32_t kMaxMetadataBytes = 16u << 20;
constexpr size_t kChunkBytes = 1 << 20;
// A large image is synced as it goes: left to the end, hundreds of MB of dirty pages flush at
// once and every WAL fdatasync in the meantime waits behind them (seconds, measured with
// etcdctl check perf --load=l). Bounded, each WAL sync competes with at most this much.
constexpr uint64_t kSyncEveryBytes = 8 << 20;

using fixed_le::get32;
using fixed_le::get64;
using fixed_le::put32;
using fixed_le::put64;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool parse_name(const std::string& name, uint64_t* index, uint64_t* term) {
  if (name.size() != 38 || name[16] != '-' || !ends_with(name, ".snap")) return false;
  return fixed_le::parse_hex(std::string_view(name).substr(0, 16), index) &&
         fixed_le::parse_hex(std::string_view(name).substr(17, 16), term);
}

}  // namespace

// ---- writer ----

SnapshotWriter::SnapshotWriter(SnapshotStore& store, SnapshotMetadata md, std::string tmp,
                               std::string final, std::unique_ptr<File> file, uint64_t offset)
    : store_(store), metadata_(std::move(md)), tmp_path_(std::move(tmp)),
      final_path_(std::move(final)), file_(std::move(file)), offset_(offset) {}

SnapshotWriter::~SnapshotWriter() {
  if (done_) return;
  file_.reset();
  try {
    store_.fs_.remove(tmp_path_);
  } catch (const std::exception&) {
    // Leftover .tmp files are removed when the store is next opened.
  }
}

void SnapshotWriter::die(const std::string& what, const std::exception& e) {
  done_ = true;
  store_.fail(fmt::format("balsa snapshot store: {} {} failed: {}. The snapshot store has "
                          "stopped and will not write again.",
                          what, tmp_path_, e.what()));
}

void SnapshotWriter::flush() {
  if (buffer_.empty()) return;
  try {
    file_->write_at(offset_, buffer_);
  } catch (const IoError& e) {
    die("writing", e);
  }
  offset_ += buffer_.size();
  unsynced_ += buffer_.size();
  buffer_.clear();
  if (unsynced_ >= kSyncEveryBytes) {
    try {
      file_->sync();
    } catch (const IoError& e) {
      die("fdatasync of", e);
    }
    unsynced_ = 0;
  }
}

void SnapshotWriter::write(std::string_view bytes) {
  store_.check_ok();
  if (done_) throw std::logic_error("snapshot writer used after commit or failure");
  crc_ = crc32c_extend(crc_, bytes.data(), bytes.size());
  data_bytes_ += bytes.size();
  buffer_.append(bytes);
  if (buffer_.size() >= kChunkBytes) flush();
}

void SnapshotWriter::commit() {
  store_.check_ok();
  if (done_) throw std::logic_error("snapshot writer committed twice or after failure");
  std::string trailer;
  put64(trailer, data_bytes_);
  put32(trailer, crc_);
  put32(trailer, crc32c(trailer));
  buffer_.append(trailer);
  flush();
  try {
    file_->sync();
  } catch (const IoError& e) {
    die("fdatasync of", e);
  }
  file_.reset();
  try {
    store_.fs_.rename(tmp_path_, final_path_);
    store_.fs_.sync_dir(store_.dir_);
  } catch (const IoError& e) {
    die("renaming", e);
  }
  done_ = true;
}

// ---- reader ----

size_t SnapshotReader::read(char* buf, size_t n) {
  const uint64_t left = data_bytes_ - pos_;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(n, left));
  if (want == 0) {
    if (crc_ != expected_crc_)
      throw StorageCorruptionError(path_, data_start_, "snapshot image checksum mismatch");
    return 0;
  }
  const size_t got = file_->read_at(data_start_ + pos_, buf, want);
  if (got != want)
    throw StorageCorruptionError(path_, data_start_ + pos_ + got, "snapshot file shrank while reading");
  crc_ = crc32c_extend(crc_, buf, got);
  pos_ += got;
  if (pos_ == data_bytes_ && crc_ != expected_crc_)
    throw StorageCorruptionError(path_, data_start_, "snapshot image checksum mismatch");
  return got;
}

std::string SnapshotReader::read_all() {
  std::string out;
  out.resize(static_cast<size_t>(data_bytes_ - pos_));
  size_t done = 0;
  while (done < out.size()) done += read(out.data() + done, out.size() - done);
  char c;
  read(&c, 1);  // end of stream: checks the checksum even for an empty image
  return out;
}

// ---- streaming a file out ----

size_t SnapshotFileReader::read_at(uint64_t offset, char* buf, size_t n) {
  if (offset >= size_) return 0;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
  const size_t got = file_->read_at(offset, buf, want);
  if (got != want) throw StorageCorruptionError(path_, offset + got, "snapshot file shrank while streaming it");
  return got;
}

// ---- receiving a file ----

IncomingSnapshot::IncomingSnapshot(SnapshotStore& store, SnapshotMetadata md, uint64_t expected,
                                   std::string part, std::string recv, std::unique_ptr<File> file)
    : store_(store), metadata_(std::move(md)), expected_(expected), part_path_(std::move(part)),
      recv_path_(std::move(recv)), file_(std::move(file)) {}

IncomingSnapshot::~IncomingSnapshot() {
  if (done_) return;
  file_.reset();
  try {
    store_.fs_.remove(part_path_);
  } catch (const std::exception&) {
    // Leftover .part files are removed when the store is next opened.
  }
}

void IncomingSnapshot::append(std::string_view bytes) {
  store_.check_ok();
  if (done_) throw std::logic_error("incoming snapshot written after finish");
  if (bytes.size() > expected_ - offset_)
    throw std::invalid_argument(fmt::format("snapshot chunk of {} bytes at {} overruns the announced {} bytes",
                                            bytes.size(), offset_, expected_));
  try {
    file_->write_at(offset_, bytes);
    offset_ += bytes.size();
    unsynced_ += bytes.size();
    if (unsynced_ >= kSyncEveryBytes) {
      file_->sync();
      unsynced_ = 0;
    }
  } catch (const IoError& e) {
    done_ = true;
    store_.fail(fmt::format("balsa snapshot store: writing {} failed: {}. The snapshot store has stopped.",
                            part_path_, e.what()));
  }
}

void IncomingSnapshot::finish() {
  store_.check_ok();
  if (done_ || offset_ != expected_)
    throw std::logic_error(fmt::format("incoming snapshot finished at {} of {} bytes", offset_, expected_));
  try {
    file_->sync();
  } catch (const IoError& e) {
    done_ = true;
    store_.fail(fmt::format("balsa snapshot store: fdatasync of {} failed: {}", part_path_, e.what()));
  }
  file_.reset();
  // Verified before it is renamed: a .recv file is always complete and intact. On failure the
  // destructor deletes the .part file.
  auto r = store_.open_path(part_path_, /*verify=*/true);
  if (!(r->metadata() == metadata_))
    throw StorageCorruptionError(part_path_, 16, "received snapshot's metadata is not the one announced");
  r.reset();
  try {
    store_.fs_.rename(part_path_, recv_path_);
    store_.fs_.sync_dir(store_.dir_);
  } catch (const IoError& e) {
    done_ = true;
    store_.fail(fmt::format("balsa snapshot store: renaming {} failed: {}", part_path_, e.what()));
  }
  done_ = true;
}

// ---- store ----

SnapshotStore::SnapshotStore(FileSystem& fs, std::string dir, size_t keep, bool read_only)
    : fs_(fs), dir_(std::move(dir)), keep_(std::max<size_t>(keep, 1)), read_only_(read_only) {
  if (read_only_) return;
  try {
    fs_.create_dirs(dir_);
    bool removed = false;
    for (const std::string& name : fs_.list(dir_)) {
      if (ends_with(name, ".snap.tmp") || ends_with(name, ".snap.part") || ends_with(name, ".snap.recv")) {
        fs_.remove(path_join(dir_, name));
        removed = true;
      }
    }
    if (removed) fs_.sync_dir(dir_);
  } catch (const IoError& e) {
    throw StorageFatalError(std::string("balsa snapshot store: opening ") + dir_ + ": " + e.what());
  }
}

std::string SnapshotStore::file_name(const SnapshotMetadata& md) const {
  return fmt::format("{:016x}-{:016x}.snap", md.index.value, md.term.value);
}

void SnapshotStore::check_ok() const {
  std::lock_guard lk(failed_mu_);
  if (!failed_.empty()) throw StorageFatalError(failed_);
}

void SnapshotStore::fail(std::string message) {
  std::lock_guard lk(failed_mu_);
  if (failed_.empty()) failed_ = std::move(message);
  throw StorageFatalError(failed_);
}

std::unique_ptr<SnapshotWriter> SnapshotStore::begin(const SnapshotMetadata& md) {
  if (read_only_) throw std::logic_error("snapshot store is read-only");
  check_ok();
  const std::string final = path_join(dir_, file_name(md));
  const std::string tmp = final + ".tmp";
  std::string header(kMagic, 8);
  put32(header, kVersion);
  const std::string meta = codec::encode(md);
  put32(header, static_cast<uint32_t>(meta.size()));
  header.append(meta);
  put32(header, crc32c(header));
  std::unique_ptr<File> f;
  try {
    if (fs_.exists(tmp)) fs_.remove(tmp);
    f = fs_.open(tmp, OpenMode::kCreate);
    f->write_at(0, header);
  } catch (const IoError& e) {
    fail(fmt::format("balsa snapshot store: creating {} failed: {}", tmp, e.what()));
  }
  return std::unique_ptr<SnapshotWriter>(
      new SnapshotWriter(*this, md, tmp, final, std::move(f), header.size()));
}

std::unique_ptr<SnapshotReader> SnapshotStore::open_path(const std::string& path, bool verify) {
  auto r = std::unique_ptr<SnapshotReader>(new SnapshotReader());
  r->path_ = path;
  r->file_ = fs_.open(path, OpenMode::kRead);
  File& f = *r->file_;
  const uint64_t size = f.size();
  auto corrupt = [&](uint64_t off, const std::string& why) {
    return StorageCorruptionError(path, off, why);
  };
  char head[16];
  if (size < 20 + kTrailerBytes || f.read_at(0, head, 16) != 16)
    throw corrupt(0, "snapshot file too short");
  if (std::memcmp(head, kMagic, 8) != 0) throw corrupt(0, "bad snapshot magic");
  if (get32(head + 8) != kVersion) throw corrupt(8, "unsupported snapshot version");
  const uint32_t m = get32(head + 12);
  if (m > kMaxMetadataBytes || 20 + m + kTrailerBytes > size)
    throw corrupt(12, fmt::format("metadata length {} does not fit the file", m));
  std::string header(20 + m, '\0');
  f.read_at(0, header.data(), header.size());
  if (get32(header.data() + 16 + m) != crc32c(std::string_view(header.data(), 16 + m)))
    throw corrupt(16 + m, "snapshot header checksum mismatch");
  auto md = codec::decode<SnapshotMetadata>(std::string_view(header.data() + 16, m));
  if (!md) throw corrupt(16, "undecodable snapshot metadata");
  r->metadata_ = *md;
  char trailer[kTrailerBytes];
  f.read_at(size - kTrailerBytes, trailer, kTrailerBytes);
  if (get32(trailer + 12) != crc32c(std::string_view(trailer, 12)))
    throw corrupt(size - kTrailerBytes, "snapshot trailer checksum mismatch");
  r->data_start_ = 20 + m;
  r->data_bytes_ = get64(trailer);
  if (r->data_bytes_ != size - kTrailerBytes - r->data_start_)
    throw corrupt(size - kTrailerBytes, "snapshot image length disagrees with the file size");
  r->expected_crc_ = get32(trailer + 8);
  if (verify) {
    std::string buf(kChunkBytes, '\0');
    uint32_t crc = 0;
    for (uint64_t off = 0; off < r->data_bytes_;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), r->data_bytes_ - off));
      const size_t got = f.read_at(r->data_start_ + off, buf.data(), want);
      if (got != want) throw corrupt(r->data_start_ + off + got, "snapshot file is short");
      crc = crc32c_extend(crc, buf.data(), got);
      off += got;
    }
    if (crc != r->expected_crc_) throw corrupt(r->data_start_, "snapshot image checksum mismatch");
  }
  return r;
}

std::vector<SnapshotMetadata> SnapshotStore::list() {
  std::vector<SnapshotMetadata> out;
  for (const std::string& name : fs_.list(dir_)) {
    if (!ends_with(name, ".snap")) continue;
    const std::string path = path_join(dir_, name);
    uint64_t index = 0, term = 0;
    if (!parse_name(name, &index, &term)) throw StorageCorruptionError(path, 0, "malformed snapshot file name");
    auto r = open_path(path, /*verify=*/false);
    if (r->metadata().index.value != index || r->metadata().term.value != term)
      throw StorageCorruptionError(path, 16, "snapshot metadata disagrees with the file name");
    out.push_back(r->metadata());
  }
  std::sort(out.begin(), out.end(),
            [](const SnapshotMetadata& a, const SnapshotMetadata& b) { return a.index < b.index; });
  return out;
}

std::optional<SnapshotMetadata> SnapshotStore::latest() {
  auto all = list();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::unique_ptr<SnapshotReader> SnapshotStore::open(LogIndex index) {
  for (const std::string& name : fs_.list(dir_)) {
    uint64_t i = 0, t = 0;
    if (parse_name(name, &i, &t) && i == index.value) {
      const std::string path = path_join(dir_, name);
      auto r = open_path(path, /*verify=*/true);
      if (r->metadata().index != index || r->metadata().term.value != t)
        throw StorageCorruptionError(path, 16, "snapshot metadata disagrees with the file name");
      return r;
    }
  }
  throw std::runtime_error(fmt::format("balsa snapshot store: no snapshot at index {} in {}",
                                       index.value, dir_));
}

std::unique_ptr<SnapshotFileReader> SnapshotStore::open_file(const SnapshotMetadata& md) {
  const std::string path = path_join(dir_, file_name(md));
  if (!fs_.exists(path))
    throw std::runtime_error(fmt::format("balsa snapshot store: no snapshot {} in {}", file_name(md), dir_));
  auto r = std::unique_ptr<SnapshotFileReader>(new SnapshotFileReader());
  r->path_ = path;
  r->file_ = fs_.open(path, OpenMode::kRead);
  r->metadata_ = md;
  r->size_ = r->file_->size();
  return r;
}

std::unique_ptr<IncomingSnapshot> SnapshotStore::receive(const SnapshotMetadata& md, uint64_t file_bytes) {
  if (read_only_) throw std::logic_error("snapshot store is read-only");
  check_ok();
  const std::string final = path_join(dir_, file_name(md));
  const std::string part = final + ".part";
  std::unique_ptr<File> f;
  try {
    if (fs_.exists(part)) fs_.remove(part);
    f = fs_.open(part, OpenMode::kCreate);
  } catch (const IoError& e) {
    fail(fmt::format("balsa snapshot store: creating {} failed: {}", part, e.what()));
  }
  return std::unique_ptr<IncomingSnapshot>(
      new IncomingSnapshot(*this, md, file_bytes, part, final + ".recv", std::move(f)));
}

bool SnapshotStore::install_received(const SnapshotMetadata& md) {
  if (read_only_) throw std::logic_error("snapshot store is read-only");
  check_ok();
  const std::string final = path_join(dir_, file_name(md));
  bool found = false;
  try {
    for (const std::string& name : fs_.list(dir_)) {
      if (!ends_with(name, ".snap.recv")) continue;
      const std::string path = path_join(dir_, name);
      uint64_t i = 0, t = 0;
      if (path == final + ".recv") {
        fs_.rename(path, final);
        found = true;
      } else if (!parse_name(name.substr(0, name.size() - 5), &i, &t) || i < md.index.value) {
        fs_.remove(path);  // an older transfer the core never took (a newer one may be arriving)
      }
    }
    fs_.sync_dir(dir_);
  } catch (const IoError& e) {
    fail(fmt::format("balsa snapshot store: installing {} failed: {}", final, e.what()));
  }
  return found;
}

void SnapshotStore::prune() {
  if (read_only_) return;
  check_ok();
  std::vector<std::pair<uint64_t, std::string>> snaps;
  for (const std::string& name : fs_.list(dir_)) {
    uint64_t i = 0, t = 0;
    if (parse_name(name, &i, &t)) snaps.emplace_back(i, name);
  }
  if (snaps.size() <= keep_) return;
  std::sort(snaps.begin(), snaps.end());
  try {
    for (size_t k = 0; k + keep_ < snaps.size(); ++k) fs_.remove(path_join(dir_, snaps[k].second));
    fs_.sync_dir(dir_);
  } catch (const IoError& e) {
    fail(std::string("balsa snapshot store: pruning ") + dir_ + " failed: " + e.what());
  }
}

}  // namespace balsa
