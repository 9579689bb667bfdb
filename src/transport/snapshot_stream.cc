#include "transport/snapshot_stream.h"

#include <algorithm>
#include <stdexcept>

#include "storage/crc32c.h"
#include "storage/errors.h"

namespace balsa {

const char* to_string(SnapshotVerdict v) {
  switch (v) {
    case SnapshotVerdict::kOk: return "ok";
    case SnapshotVerdict::kDone: return "done";
    case SnapshotVerdict::kOutOfOrder: return "chunk out of order";
    case SnapshotVerdict::kOldTerm: return "old term";
    case SnapshotVerdict::kBadChecksum: return "chunk checksum mismatch";
    case SnapshotVerdict::kBadImage: return "snapshot file did not verify";
    case SnapshotVerdict::kNoTransfer: return "no transfer in progress";
    case SnapshotVerdict::kFailed: return "receiver failed";
  }
  return "?";
}

SnapshotAck SnapshotReceiver::refuse(SnapshotVerdict v, uint64_t offset) {
  switch (v) {
    case SnapshotVerdict::kOutOfOrder: stats_.refused_out_of_order++; break;
    case SnapshotVerdict::kOldTerm: stats_.refused_old_term++; break;
    case SnapshotVerdict::kBadChecksum: stats_.refused_bad_checksum++; break;
    case SnapshotVerdict::kBadImage: stats_.refused_bad_image++; break;
    default: stats_.refused_other++; break;
  }
  return SnapshotAck{v, offset};
}

SnapshotAck SnapshotReceiver::storage_failed(const std::exception& e) {
  cur_.reset();
  if (!failed_) {
    failed_ = true;
    if (on_storage_failure_) on_storage_failure_(e.what());
  }
  return refuse(SnapshotVerdict::kFailed, 0);
}

SnapshotAck SnapshotReceiver::offer(NodeId from, const SnapshotOffer& offer) {
  std::lock_guard lk(mu_);
  stats_.offers++;
  const Message& m = offer.msg;
  const SnapshotMetadata& md = m.snapshot.metadata;
  // The smallest file: header (20 bytes) + trailer (16) around some metadata.
  if (failed_) return refuse(SnapshotVerdict::kFailed, 0);
  if (m.type != MessageType::kSnap || m.from != from || md.index.value == 0 || offer.file_bytes < 36)
    return refuse(SnapshotVerdict::kFailed, 0);
  if (m.term < highest_term_) return refuse(SnapshotVerdict::kOldTerm, 0);
  highest_term_ = m.term;
  if (cur_ && cur_->from == from && cur_->msg.snapshot.metadata == md &&
      cur_->file->expected_size() == offer.file_bytes) {
    cur_->msg = m;  // the same snapshot, maybe from a later term of the same leader
    if (cur_->file->size() > 0) stats_.resumed++;
    return SnapshotAck{SnapshotVerdict::kOk, cur_->file->size()};
  }
  if (cur_) stats_.restarted++;
  cur_.reset();  // deletes the partial file
  try {
    cur_ = Transfer{from, m, store_.receive(md, offer.file_bytes)};
  } catch (const StorageFatalError& e) {
    return storage_failed(e);
  } catch (const std::exception&) {
    return refuse(SnapshotVerdict::kFailed, 0);
  }
  return SnapshotAck{SnapshotVerdict::kOk, 0};
}

SnapshotAck SnapshotReceiver::chunk(NodeId from, const SnapshotChunk& c, Message* deliver) {
  std::lock_guard lk(mu_);
  if (!cur_ || cur_->from != from) return refuse(SnapshotVerdict::kNoTransfer, 0);
  IncomingSnapshot& file = *cur_->file;
  const uint64_t have = file.size();
  if (c.term < cur_->msg.term) return refuse(SnapshotVerdict::kOldTerm, have);
  if (c.term != cur_->msg.term) return refuse(SnapshotVerdict::kNoTransfer, have);
  if (crc32c(c.data) != c.crc) return refuse(SnapshotVerdict::kBadChecksum, have);
  if (c.offset != have || c.data.size() > file.expected_size() - have || c.data.empty())
    return refuse(SnapshotVerdict::kOutOfOrder, have);
  try {
    file.append(c.data);
  } catch (const StorageFatalError& e) {
    return storage_failed(e);
  } catch (const std::exception&) {
    cur_.reset();
    return refuse(SnapshotVerdict::kFailed, 0);
  }
  stats_.chunks++;
  stats_.bytes += c.data.size();
  if (file.size() < file.expected_size()) return SnapshotAck{SnapshotVerdict::kOk, file.size()};
  try {
    file.finish();
  } catch (const StorageCorruptionError&) {
    cur_.reset();  // deletes the file: start over
    return refuse(SnapshotVerdict::kBadImage, 0);
  } catch (const StorageFatalError& e) {
    return storage_failed(e);
  } catch (const std::exception&) {
    cur_.reset();
    return refuse(SnapshotVerdict::kFailed, 0);
  }
  stats_.completed++;
  *deliver = std::move(cur_->msg);
  const uint64_t size = file.size();
  cur_.reset();
  return SnapshotAck{SnapshotVerdict::kDone, size};
}

SnapshotReceiverStats SnapshotReceiver::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

SnapshotSendSession::SnapshotSendSession(Message msg, std::unique_ptr<SnapshotFileReader> file,
                                         size_t chunk_bytes, SnapshotStreamBug bug)
    : msg_(std::move(msg)), file_(std::move(file)), chunk_bytes_(std::max<size_t>(chunk_bytes, 1)), bug_(bug) {
  msg_.snapshot.data.clear();
}

void SnapshotSendSession::resume_at(uint64_t offset) {
  if (bug_ == SnapshotStreamBug::kResumeFromSent && pos_ > 0) return;  // planted: ignore the receiver
  pos_ = std::min(offset, file_->size());
}

void SnapshotSendSession::next_chunk(SnapshotChunk* out) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_bytes_, file_->size() - pos_));
  out->data.resize(n);
  const size_t got = file_->read_at(pos_, out->data.data(), n);
  if (got != n) throw std::runtime_error("snapshot file shrank while streaming it");
  out->term = msg_.term;
  out->offset = pos_;
  out->crc = crc32c(out->data);
  pos_ += n;
}

std::chrono::nanoseconds RateLimiter::reserve(uint64_t n, Clock::time_point now) {
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  const auto cost = std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(n) * 1e9 / static_cast<double>(rate_)));
  const auto burst = std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(burst_) * 1e9 / static_cast<double>(rate_)));
  Clock::time_point start = next_ ? std::max(*next_, now) : now;
  next_ = start + cost;
  const auto wait = *next_ - now - burst;
  return wait > std::chrono::nanoseconds(0) ? wait : std::chrono::nanoseconds(0);
}

}  // namespace balsa
