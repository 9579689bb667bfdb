// balsa::kv::MvccStore: an in-memory multi-version key-value store with etcd v3.4's semantics
// (go.etcd.io/etcd/mvcc + etcdserver/apply.go), driven by etcd's own request/response protos.
//
// Model
// - One store-wide revision. A fresh store is at revision 1 and its compact revision is -1 (as
//   etcd's). Every write request that changes something (Put, a DeleteRange that deletes a key,
//   a Txn whose chosen branch changes something) advances it by exactly one; the changes of one
//   request get sub-revisions 0, 1, 2, ... of that main revision. Reads, no-op deletes and
//   compactions do not advance it.
// - Each key has a history: records ordered by revision, each either a put (value,
//   create_revision, version, lease) or a tombstone (a delete). A key's generation runs from a
//   put that finds the key absent (version 1, create_revision = that revision) to the next
//   tombstone; the version counts puts within the generation.
// - The key as of revision R is the last record with main revision <= R, unless that record
//   is a tombstone (or there is none): then the key does not exist at R.
// - Compact(R) drops, per key, every record older than the key's record as of R, and that
//   record too if it is a tombstone: exactly the revisions etcd deletes from its backend.
//   Reads at revisions below R then fail with "required revision has been compacted".
//
// Memory layout
//   std::map<key, std::vector<Record>>. A Range over [key, end) is one lower_bound plus a walk
//   over the k keys in range: O(log n + k) for reads at the current revision (each key's last
//   record), O(log n + k log h) for historical reads (binary search in each key's history of
//   length h). There is no separate revision -> record map: HashKV and snapshots, the only
//   users of revision order, gather it when they run.
//
// Responses: the store fills etcd's *Response protos completely except for the header's
// cluster_id, member_id and raft_term, which the server owns; header.revision is set (also in
// nested Txn responses, as etcd does) and returned in Result::revision.
//
// Not thread-safe: KvStateMachine wraps it with a reader/writer lock.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "kv/kv_status.h"
#include "kv/lease_table.h"
#include "storage/byte_stream.h"

namespace balsa::kv {

namespace pb = ::etcdserverpb;

// A revision: main is the store revision of the write request, sub orders changes within it.
struct Revision {
  int64_t main = 0;
  int64_t sub = 0;
  auto operator<=>(const Revision&) const = default;
};

// What a store call returns besides the response proto. `revision` is the response header's
// revision (0 on an error).
struct Result {
  Status status;
  int64_t revision = 0;
  bool ok() const { return status.ok(); }
};

// Limits etcd enforces before a request reaches its store (embed.Config defaults).
inline constexpr int kDefaultMaxTxnOps = 128;
inline constexpr size_t kDefaultMaxRequestBytes = 3 * 1024 * 1024 / 2;  // 1.5 MiB

// What happened to a lease, for MvccStore::Options::on_lease.
struct LeaseChange {
  enum class Kind { kGranted, kRenewed, kRevoked, kReplaced };
  Kind kind = Kind::kGranted;
  int64_t id = 0;   // 0 for kReplaced
  int64_t ttl = 0;  // the granted TTL (kGranted, kRenewed)
};

class MvccStore {
 public:
  struct Options {
    // Max operations per Txn level (etcd --max-txn-ops).
    int max_txn_ops = kDefaultMaxTxnOps;
    // Called when a lease is granted, renewed (a replicated keep-alive) or revoked, and with
    // kReplaced when restore() replaced the whole table. Runs inside the write like on_events.
    // The leader's expiry clock (LeaseDeadlines, outside this deterministic store) follows it.
    std::function<void(const LeaseChange& change)> on_lease;
    // Called at the end of every write request that changed something, with its revision and
    // its changes as watch events in sub-revision order (etcd's watchableStoreTxnWrite.End):
    // PUT carries the new KeyValue; DELETE carries {key, mod_revision = revision}. prev_kv is
    // not filled (a watcher that wants it reads the key at revision - 1). Runs inside the
    // write, so (in KvStateMachine) under the exclusive lock: keep it short.
    std::function<void(int64_t revision, std::vector<mvccpb::Event>&& events)> on_events;
  };

  MvccStore() : MvccStore(Options{}) {}
  explicit MvccStore(Options options);

  // ---- Requests ------------------------------------------------------------------------------
  // Each validates its request as etcd's gRPC layer does (v3rpc/key.go) and then applies it as
  // etcd's applier does. Writes are deterministic: the same requests in the same order give
  // the same state and responses on every member. On an error nothing changes.
  Result range(const pb::RangeRequest& req, pb::RangeResponse* resp) const;
  Result put(const pb::PutRequest& req, pb::PutResponse* resp);
  Result delete_range(const pb::DeleteRangeRequest& req, pb::DeleteRangeResponse* resp);
  Result txn(const pb::TxnRequest& req, pb::TxnResponse* resp);
  Result compact(const pb::CompactionRequest& req, pb::CompactionResponse* resp);

  // HashKV (Maintenance.HashKV): fills hash and compact_revision; header.revision is the
  // current revision. `revision` 0 means the current revision. The hash is the CRC-32C that
  // etcd 3.4's mvcc.store.HashByRev computes over its backend's key bucket: "key", then, in
  // revision order, each retained revision's key bytes (8-byte big-endian main, '_', 8-byte
  // big-endian sub, plus 't' for a tombstone) followed by the marshaled mvccpb.KeyValue,
  // for revisions <= `revision`, skipping revisions <= the compact revision that a compaction
  // at `revision` would drop. It therefore depends only on the replicated history, so members
  // agree, and it is meant to equal etcd's own value for the same history.
  Result hash_kv(int64_t revision, pb::HashKVResponse* resp) const;

  // Watch catch-up: the events of keys in [key, range_end) (Range's key/range_end rules) with
  // start_revision <= revision <= end_revision (0: current), in revision order, at most
  // `limit` of them (0: no limit). Fails with errors::compacted() when start_revision is
  // below the compact revision (etcd cancels such a watch with compact_revision set) and
  // errors::future_rev() when end_revision is ahead of the store.
  Result events(std::string_view key, std::string_view range_end, int64_t start_revision,
                int64_t end_revision, size_t limit, std::vector<mvccpb::Event>* out) const;

  // ---- Leases (etcd's lessor, without its clock) -----------------------------------------------
  // Grant: the id is chosen by the proposer (non-zero; 0 fails with "requested lease not
  // found", as etcd's lessor), and the TTL is final (the proposer applied the minimum TTL).
  // Errors: "lease already exists", "too large lease TTL". Changes no revision.
  Result lease_grant(const pb::LeaseGrantRequest& req, pb::LeaseGrantResponse* resp);
  // Revoke: deletes every key attached to the lease in one write (one revision, a DELETE event
  // per key, sub-revisions in key order) and drops the lease. Unknown: "requested lease not found".
  Result lease_revoke(const pb::LeaseRevokeRequest& req, pb::LeaseRevokeResponse* resp);
  // A replicated keep-alive: resp TTL is the granted TTL, or 0 for an unknown lease (etcd's
  // LeaseKeepAlive answers an unknown lease with TTL 0, not an error). Changes no revision.
  Result lease_renew(int64_t id, pb::LeaseKeepAliveResponse* resp);
  // ID, grantedTTL and (req.keys) the attached keys; TTL (the remaining time) is the caller's,
  // from its deadlines. Unknown: "requested lease not found".
  Result lease_time_to_live(const pb::LeaseTimeToLiveRequest& req,
                            pb::LeaseTimeToLiveResponse* resp) const;
  Result lease_leases(pb::LeaseLeasesResponse* resp) const;
  const LeaseTable& leases() const { return leases_; }

  // ---- Validation alone (what the gRPC layer checks before proposing) -------------------------
  static Status validate(const pb::RangeRequest& req);
  static Status validate(const pb::PutRequest& req);
  static Status validate(const pb::DeleteRangeRequest& req);
  // Op counts, keys, and etcd's put/delete overlap rule ("duplicate key given in txn request").
  static Status validate(const pb::TxnRequest& req, int max_txn_ops);

  // ---- State ---------------------------------------------------------------------------------
  int64_t current_revision() const { return current_rev_; }
  int64_t compact_revision() const { return compact_rev_; }
  size_t key_count() const { return index_.size(); }  // keys with any retained record
  size_t record_count() const { return record_count_; }

  // ---- Snapshots -----------------------------------------------------------------------------
  // Writes every retained record, both revisions and the lease table, in chunks of about
  // `chunk_bytes`. The format (versioned: "BALSAKV2"; "BALSAKV1" images, which have no lease
  // section, still restore) is documented in mvcc_image.cc; `restore` validates it and throws
  // std::runtime_error on a malformed or corrupt image, leaving the store unchanged.
  void save(ByteSink& out, size_t chunk_bytes = 64 * 1024) const;
  void restore(ByteSource& in);

  // A point-in-time image written while the store keeps changing: take an ImagePoint (under
  // the owner's lock), then write_image runs `under_lock(fn)` around each slice of keys (the
  // owner takes its shared lock there) and writes outside it. The bytes are exactly what
  // save() would have written at the ImagePoint, because the store only appends records
  // newer than it; compaction is the one change that removes history the image needs, so a
  // compaction in between makes write_image throw ImageInvalidated (start again later).
  struct ImagePoint {
    int64_t revision = 0;
    int64_t compact = 0;
    std::vector<std::pair<int64_t, int64_t>> leases;  // (id, ttl) at the point
  };
  struct ImageInvalidated : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  ImagePoint image_point() const;
  void write_image(const ImagePoint& at, ByteSink& out,
                   const std::function<void(const std::function<void()>&)>& under_lock,
                   size_t keys_per_slice = 2048) const;

  // Exact structural equality, leases included (tests).
  bool operator==(const MvccStore& o) const;

 private:
  struct Record {
    Revision rev;
    int64_t create_revision = 0;  // 0 for a tombstone
    int64_t version = 0;          // 0 for a tombstone
    int64_t lease = 0;
    std::string value;
    bool tombstone = false;
    bool operator==(const Record&) const = default;
  };
  using History = std::vector<Record>;  // ordered by rev, strictly increasing
  using Index = std::map<std::string, History, std::less<>>;

  // A live key found by a read.
  struct Hit {
    const std::string* key;
    const Record* rec;
  };

  // The write transaction in progress: changes go to revision {begin_rev + 1, sub}.
  struct WriteTxn {
    int64_t begin_rev = 0;
    int64_t changes = 0;
    std::vector<const std::string*> changed_keys;  // the key of each sub-revision
    // Revision reads inside the txn see: the txn's own changes once it has any.
    int64_t read_rev() const { return changes > 0 ? begin_rev + 1 : begin_rev; }
  };

  static const Record* at(const History& h, int64_t rev);
  // Live keys in [key, end) at `rev` (etcd range semantics: empty end = the single key,
  // end "\0" = no upper bound). Calls `f(Hit)`; stops early when it returns false.
  template <typename F>
  void visit(std::string_view key, std::string_view end, int64_t rev, F&& f) const;

  Result range_at(const pb::RangeRequest& req, int64_t cur_rev, pb::RangeResponse* resp) const;
  Status check_put_in_txn(const pb::PutRequest& req, int64_t rev) const;
  Status check_range_in_txn(const pb::RangeRequest& req, int64_t rev) const;
  bool compare(const pb::Compare& c, int64_t rev) const;
  void txn_path(const pb::TxnRequest& req, int64_t rev, std::vector<bool>* path) const;
  Status check_txn_ops(const pb::TxnRequest& req, const std::vector<bool>& path, size_t* pos,
                       int64_t rev, bool puts) const;
  Status apply_txn(WriteTxn& tw, const pb::TxnRequest& req, const std::vector<bool>& path,
                   size_t* pos, pb::TxnResponse* resp);
  void rollback(WriteTxn& tw);
  Status put_in(WriteTxn& tw, const pb::PutRequest& req, pb::PutResponse* resp);
  void delete_in(WriteTxn& tw, const pb::DeleteRangeRequest& req, pb::DeleteRangeResponse* resp);
  void write_record(WriteTxn& tw, std::string_view key, Record rec);
  void end_write(const WriteTxn& tw);
  void reattach_leases();  // rebuilds every lease's key set from the newest records (restore)
  void compact_to(int64_t rev);

  static void fill_event(const std::string& key, const Record& r, mvccpb::Event* ev);
  static void fill_kv(const std::string& key, const Record& r, bool keys_only,
                      mvccpb::KeyValue* kv);

  Options options_;
  Index index_;
  int64_t current_rev_ = 1;
  int64_t compact_rev_ = -1;
  size_t record_count_ = 0;
  LeaseTable leases_;
};

}  // namespace balsa::kv
