#include "storage/durable_log.h"

#include <fmt/format.h>

namespace balsa {

std::unique_ptr<DurableLog> DurableLog::open(FileSystem& fs, const std::string& dir,
                                             DurableLogOptions options) {
  std::unique_ptr<DurableLog> log(new DurableLog());
  auto opened = Wal::open(fs, path_join(dir, "wal"), options.wal);
  log->wal_ = std::move(opened.wal);
  log->store_ = std::make_unique<SnapshotStore>(fs, path_join(dir, "snap"), options.keep_snapshots);
  WalRecovery& rec = opened.recovered;
  log->torn_tail_ = rec.torn_tail;
  if (rec.snapshot) {
    bool found = false;
    for (const SnapshotMetadata& md : log->store_->list()) found |= md == *rec.snapshot;
    if (!found)
      throw StorageCorruptionError(
          log->store_->dir(), 0,
          fmt::format("the WAL refers to a snapshot at index {} term {} that the store does not hold",
                      rec.snapshot->index.value, rec.snapshot->term.value));
    log->cache_.apply_snapshot(Snapshot{*rec.snapshot, {}});
  }
  log->cache_.append(std::move(rec.entries));  // recovered entries move, not copy
  log->cache_.set_hard_state(rec.hard_state);
  return log;
}

Snapshot DurableLog::snapshot() const {
  Snapshot s = cache_.snapshot();
  if (s.empty() || !inline_images_) return s;
  s.data = store_->open(s.metadata.index)->read_all();
  return s;
}

void DurableLog::persist(const HardState* hs, std::span<const Entry> entries, bool sync) {
  wal_->save(hs, entries, sync);
  if (!entries.empty()) {
    // The cache ignores entries at or below its snapshot, as the WAL does.
    cache_.append(entries);  // one copy, into the cache
  }
  if (hs) cache_.set_hard_state(*hs);
}

void DurableLog::apply_snapshot(const SnapshotMetadata& md, ByteSource& image) {
  auto writer = store_->begin(md);
  std::string buf(1 << 16, '\0');
  for (;;) {
    const size_t n = image.read(buf.data(), buf.size());
    if (n == 0) break;
    writer->write(std::string_view(buf.data(), n));
  }
  writer->commit();
  wal_->save_snapshot(md, /*discard_after=*/true);
  store_->prune();
  cache_.apply_snapshot(Snapshot{md, {}});
  wal_->release_to(md.index);
}

bool DurableLog::install_received_snapshot(const SnapshotMetadata& md) {
  if (!store_->install_received(md)) return false;
  wal_->save_snapshot(md, /*discard_after=*/true);
  store_->prune();
  cache_.apply_snapshot(Snapshot{md, {}});
  wal_->release_to(md.index);
  return true;
}

void DurableLog::apply_snapshot(const Snapshot& snap) {
  StringSource src(snap.data);
  apply_snapshot(snap.metadata, src);
}

void DurableLog::create_snapshot(LogIndex index, const ConfState& conf,
                                 const std::function<void(ByteSink&)>& write_image) {
  auto writer = begin_snapshot(index, conf);
  write_image(*writer);
  writer->commit();
  finish_snapshot(writer->metadata());
}

std::unique_ptr<SnapshotWriter> DurableLog::begin_snapshot(LogIndex index, const ConfState& conf) {
  StorageError err{};
  const auto t = cache_.term(index, &err);
  if (!t) throw std::invalid_argument(fmt::format("create_snapshot: no entry at {}", index.value));
  return store_->begin(SnapshotMetadata{index, *t, conf});
}

bool DurableLog::finish_snapshot(const SnapshotMetadata& md) {
  if (md.index <= cache_.snapshot().metadata.index) {
    // A leader's snapshot (or a later local one) already covers it: the file is surplus.
    store_->prune();
    return false;
  }
  wal_->save_snapshot(md);
  store_->prune();
  cache_.create_snapshot(md.index, md.conf, {});
  return true;
}

void DurableLog::compact(LogIndex index) {
  if (index > cache_.snapshot().metadata.index)
    throw std::invalid_argument(fmt::format("compact({}) beyond the snapshot", index.value));
  cache_.compact(index);
  wal_->release_to(index);
}

}  // namespace balsa
