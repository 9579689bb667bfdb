#include "balsad/maintenance_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "balsad/snapshot_file.h"

namespace balsa::balsad {

namespace pb = ::etcdserverpb;

namespace {

// Bytes of regular files under `dir`, following the wal -> --wal-dir link.
int64_t bytes_under(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::follow_directory_symlink, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) total += static_cast<int64_t>(it->file_size(e2));
  }
  return total;
}

// The newest local snapshot file's size: the store's image as of that snapshot.
int64_t newest_snapshot_bytes(const std::string& dir) {
  int64_t size = 0;
  std::filesystem::file_time_type newest{};
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2) || it->path().extension() == ".tmp") continue;
    const auto t = it->last_write_time(e2);
    if (size == 0 || t > newest) {
      newest = t;
      size = static_cast<int64_t>(it->file_size(e2));
    }
  }
  return size;
}

class FdSink final : public ByteSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void write(std::string_view b) override {
    while (!b.empty()) {
      const ssize_t n = ::write(fd_, b.data(), b.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(std::string("snapshot spool: ") + std::strerror(errno));
      b.remove_prefix(static_cast<size_t>(n));
      bytes += static_cast<uint64_t>(n);
    }
  }
  uint64_t bytes = 0;

 private:
  int fd_;
};

class SnapshotStream final : public grpc::ServerWriteReactor<pb::SnapshotResponse> {
 public:
  explicit SnapshotStream(ServiceContext& s) : s_(s) {
    std::thread([this] { prepare(); }).detach();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish({grpc::StatusCode::CANCELLED, "snapshot stream broken"});
    if (done_) return Finish(grpc::Status::OK);
    next();
  }
  void OnDone() override {
    if (fd_ >= 0) ::close(fd_);
    delete this;
  }

 private:
  void prepare() {
    const std::string dir = s_.limits().data_dir.empty() ? "." : s_.limits().data_dir;
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      return Finish({grpc::StatusCode::INTERNAL,
                     "etcdserver: cannot spool the snapshot in " + dir + ": " + std::strerror(errno)});
    }
    try {
      bool written = false;
      for (int attempt = 0; attempt < 5 && !written; ++attempt) {
        std::function<void(ByteSink&)> image = s_.sm().snapshot_image();
        if (!image) break;
        FdSink sink(fd_);
        try {
          image(sink);
          image_bytes_ = sink.bytes;
          written = true;
        } catch (const SnapshotAbandoned&) {  // compacted meanwhile: start again
          if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) throw std::runtime_error("rewind");
        }
      }
      if (!written) {  // under the shared lock for the whole image (applies wait)
        FdSink sink(fd_);
        s_.sm().save_snapshot(sink);
        image_bytes_ = sink.bytes;
      }
    } catch (const std::exception& e) {
      return Finish({grpc::StatusCode::INTERNAL, std::string("etcdserver: snapshot failed: ") + e.what()});
    }
    ::lseek(fd_, 0, SEEK_SET);
    total_ = kSnapshotPrefixBytes + image_bytes_ + snapshot_padding(image_bytes_) + kSnapshotSumBytes;
    s_.fill_header(resp_.mutable_header(), s_.sm().revisions().current);
    next();
  }

  // The next message: prefix, image, padding, then the checksum.
  void next() {
    constexpr size_t kChunk = 1 << 20;
    std::string chunk;
    const uint64_t data_end = total_ - kSnapshotSumBytes;
    while (chunk.size() < kChunk && sent_ < data_end) {
      if (sent_ < kSnapshotPrefixBytes) {
        chunk += snapshot_prefix(image_bytes_).substr(sent_);
        sent_ = kSnapshotPrefixBytes;
      } else if (sent_ < kSnapshotPrefixBytes + image_bytes_) {
        const size_t want = static_cast<size_t>(
            std::min<uint64_t>(kChunk - chunk.size(), kSnapshotPrefixBytes + image_bytes_ - sent_));
        const size_t at = chunk.size();
        chunk.resize(at + want);
        const ssize_t n = ::read(fd_, chunk.data() + at, want);
        if (n <= 0) return Finish({grpc::StatusCode::INTERNAL, "etcdserver: snapshot spool read failed"});
        chunk.resize(at + static_cast<size_t>(n));
        sent_ += static_cast<uint64_t>(n);
      } else {
        const size_t pad = static_cast<size_t>(data_end - sent_);
        chunk.append(pad, char{0});
        sent_ += pad;
      }
    }
    sha_.update(chunk.data(), chunk.size());
    if (sent_ == data_end) {
      chunk += sha_.finish();
      sent_ += kSnapshotSumBytes;
      done_ = true;
    }
    resp_.set_remaining_bytes(total_ - sent_);
    resp_.set_blob(std::move(chunk));
    StartWrite(&resp_);
  }

  ServiceContext& s_;
  int fd_ = -1;
  uint64_t image_bytes_ = 0, total_ = 0, sent_ = 0;
  bool done_ = false;
  Sha256 sha_;
  pb::SnapshotResponse resp_;
};

}  // namespace

grpc::ServerWriteReactor<pb::SnapshotResponse>* MaintenanceService::Snapshot(grpc::CallbackServerContext*,
                                                                             const pb::SnapshotRequest*) {
  return new SnapshotStream(s_);
}

grpc::ServerUnaryReactor* MaintenanceService::Defragment(grpc::CallbackServerContext* ctx,
                                                         const pb::DefragmentRequest*,
                                                         pb::DefragmentResponse* resp) {
  // The store is in memory and compaction frees what it drops at once: nothing to defragment.
  s_.fill_header(resp->mutable_header(), 0);
  return finish_now(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* MaintenanceService::Alarm(grpc::CallbackServerContext* ctx, const pb::AlarmRequest* req,
                                                    pb::AlarmResponse* resp) {
  // balsad raises no alarm yet (--quota-backend-bytes is refused, corruption checks do not run):
  // GET lists none and DEACTIVATE has nothing to disarm, as etcd answers with no alarm raised.
  if (req->action() == pb::AlarmRequest::ACTIVATE)
    return finish_now(ctx, {grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: balsad does not raise alarms yet"});
  s_.fill_header(resp->mutable_header(), 0);
  return finish_now(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* MaintenanceService::Status(grpc::CallbackServerContext* ctx, const pb::StatusRequest*,
                                                     pb::StatusResponse* resp) {
  const NodeStatus st = s_.node().status();
  const kv::KvStateMachine::Revisions revs = s_.sm().revisions();
  s_.fill_header(resp->mutable_header(), revs.current);
  resp->mutable_header()->set_raft_term(st.term.value);
  resp->set_version(kEtcdVersion);
  // No bbolt file: dbSize is what the Raft log and snapshots take on disk; dbSizeInUse is the
  // newest local snapshot image (the store as of that snapshot).
  const std::string raft = s_.limits().data_dir + "/member/raft";
  resp->set_dbsize(bytes_under(raft));
  resp->set_dbsizeinuse(newest_snapshot_bytes(raft + "/snap"));
  resp->set_leader(s_.cluster().member_id_of(st.leader));
  resp->set_raftindex(st.commit.value);
  resp->set_raftterm(st.term.value);
  resp->set_raftappliedindex(revs.applied.value);
  resp->set_islearner(false);
  if (st.leader == kNoNode) resp->add_errors("etcdserver: no leader");
  return finish_now(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* ctx, const pb::HashKVRequest* req,
                                                     pb::HashKVResponse* resp) {
  const kv::Result res = s_.sm().hash_kv(req->revision(), resp);
  if (!res.ok()) return finish_now(ctx, to_grpc(res.status));
  s_.fill_header(resp->mutable_header(), resp->header().revision());
  return finish_now(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* MaintenanceService::MoveLeader(grpc::CallbackServerContext* ctx,
                                                         const pb::MoveLeaderRequest* req,
                                                         pb::MoveLeaderResponse* resp) {
  const NodeStatus st = s_.node().status();
  if (st.role != Role::kLeader) return finish_now(ctx, {grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: not leader"});
  for (const Member& m : s_.cluster().members) {
    if (m.member_id == req->targetid()) {
      s_.node().transfer_leadership(m.node_id);
      s_.fill_header(resp->mutable_header(), 0);
      return finish_now(ctx, grpc::Status::OK);
    }
  }
  return finish_now(ctx, {grpc::StatusCode::NOT_FOUND, "etcdserver: bad leader transferee"});
}

}  // namespace balsa::balsad
