#include "kv/mvcc_store.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>
#include <utility>

#include "core/assert.h"
#include "kv/crc32c.h"

namespace balsa::kv {
namespace {

// etcd's mkGteRange: a range_end of exactly "\0" means "every key >= key".
bool is_gte_range(std::string_view end) { return end.size() == 1 && end[0] == '\0'; }

// ---- Txn put/delete overlap check (etcd v3rpc/key.go checkIntervals) ---------------------------
//
// Deletes are intervals [begin, end) compared as byte strings; a point delete of k is
// [k, k+"\0"). A delete with range_end "\0" is the interval [key, "\0"), which is empty for
// every non-empty key: like etcd, such a "from key" delete never conflicts with a put.
struct Interval {
  std::string begin, end;
  bool contains(const std::string& k) const { return begin <= k && k < end; }
};
struct PutsAndDels {
  std::set<std::string> puts;
  std::vector<Interval> dels;
  bool deleted(const std::string& k) const {
    return std::any_of(dels.begin(), dels.end(), [&](const Interval& d) { return d.contains(k); });
  }
};

Status check_intervals(const google::protobuf::RepeatedPtrField<pb::RequestOp>& reqs,
                       PutsAndDels* out) {
  PutsAndDels& pd = *out;
  for (const auto& req : reqs) {
    if (req.request_case() != pb::RequestOp::kRequestDeleteRange) continue;
    const auto& d = req.request_delete_range();
    if (!d.range_end().empty()) {
      pd.dels.push_back({d.key(), d.range_end()});
    } else {
      pd.dels.push_back({d.key(), d.key() + std::string(1, '\0')});
    }
  }
  for (const auto& req : reqs) {
    if (req.request_case() != pb::RequestOp::kRequestTxn) continue;
    PutsAndDels then_pd, else_pd;
    if (Status s = check_intervals(req.request_txn().success(), &then_pd); !s.ok()) return s;
    if (Status s = check_intervals(req.request_txn().failure(), &else_pd); !s.ok()) return s;
    for (const auto& k : then_pd.puts) {
      if (pd.puts.contains(k) || pd.deleted(k)) return errors::duplicate_key();
      pd.puts.insert(k);
    }
    for (const auto& k : else_pd.puts) {
      // The same key in then and else is fine: only one branch runs.
      if (pd.puts.contains(k) && !then_pd.puts.contains(k)) return errors::duplicate_key();
      if (pd.deleted(k)) return errors::duplicate_key();
      pd.puts.insert(k);
    }
    pd.dels.insert(pd.dels.end(), then_pd.dels.begin(), then_pd.dels.end());
    pd.dels.insert(pd.dels.end(), else_pd.dels.begin(), else_pd.dels.end());
  }
  for (const auto& req : reqs) {
    if (req.request_case() != pb::RequestOp::kRequestPut) continue;
    const std::string& k = req.request_put().key();
    if (pd.puts.contains(k) || pd.deleted(k)) return errors::duplicate_key();
    pd.puts.insert(k);
  }
  return Status::Ok();
}

Status check_txn_limits(const pb::TxnRequest& r, int max_txn_ops);

Status check_request_op(const pb::RequestOp& op, int max_txn_ops) {
  switch (op.request_case()) {
    case pb::RequestOp::kRequestRange: return MvccStore::validate(op.request_range());
    case pb::RequestOp::kRequestPut: return MvccStore::validate(op.request_put());
    case pb::RequestOp::kRequestDeleteRange: return MvccStore::validate(op.request_delete_range());
    case pb::RequestOp::kRequestTxn: return check_txn_limits(op.request_txn(), max_txn_ops);
    case pb::RequestOp::REQUEST_NOT_SET: return errors::key_not_found();  // as etcd
  }
  return errors::key_not_found();
}

// etcd's checkTxnRequest: every level may hold max_txn_ops operations, and a nested txn gets
// what its parent left (max - the parent's count).
Status check_txn_limits(const pb::TxnRequest& r, int max_txn_ops) {
  const int opc = std::max({r.compare_size(), r.success_size(), r.failure_size()});
  if (opc > max_txn_ops) return errors::too_many_ops();
  for (const auto& c : r.compare()) {
    if (c.key().empty()) return errors::empty_key();
  }
  for (const auto& op : r.success()) {
    if (Status s = check_request_op(op, max_txn_ops - opc); !s.ok()) return s;
  }
  for (const auto& op : r.failure()) {
    if (Status s = check_request_op(op, max_txn_ops - opc); !s.ok()) return s;
  }
  return Status::Ok();
}

int compare_int(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

int compare_bytes(std::string_view a, std::string_view b) {
  const int c = a.compare(b);  // char_traits<char>::compare is memcmp: unsigned bytes
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

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

constexpr std::string_view kSnapshotMagic = "BALSAKV1";

}  // namespace

MvccStore::MvccStore(Options options) : options_(std::move(options)) {}

// ---- Validation ---------------------------------------------------------------------------------

Status MvccStore::validate(const pb::RangeRequest& req) {
  if (req.key().empty()) return errors::empty_key();
  // An unknown sort target or order (a newer client, or garbage) is refused, as etcd 3.5 does,
  // rather than silently returning an unsorted result.
  if (!pb::RangeRequest::SortTarget_IsValid(req.sort_target()) ||
      !pb::RangeRequest::SortOrder_IsValid(req.sort_order()))
    return errors::invalid_sort_option();
  return Status::Ok();
}

Status MvccStore::validate(const pb::PutRequest& req) {
  if (req.key().empty()) return errors::empty_key();
  if (req.ignore_value() && !req.value().empty()) return errors::value_provided();
  if (req.ignore_lease() && req.lease() != 0) return errors::lease_provided();
  return Status::Ok();
}

Status MvccStore::validate(const pb::DeleteRangeRequest& req) {
  if (req.key().empty()) return errors::empty_key();
  return Status::Ok();
}

Status MvccStore::validate(const pb::TxnRequest& req, int max_txn_ops) {
  if (Status s = check_txn_limits(req, max_txn_ops); !s.ok()) return s;
  // Checked after the op counts so a huge request cannot make this quadratic (as etcd).
  PutsAndDels then_pd, else_pd;
  if (Status s = check_intervals(req.success(), &then_pd); !s.ok()) return s;
  return check_intervals(req.failure(), &else_pd);
}

// ---- Reads --------------------------------------------------------------------------------------

const MvccStore::Record* MvccStore::at(const History& h, int64_t rev) {
  if (h.empty()) return nullptr;
  const Record* r = nullptr;
  if (h.back().rev.main <= rev) {
    r = &h.back();  // the common case: a read at the current revision
  } else {
    auto it = std::upper_bound(h.begin(), h.end(), rev,
                               [](int64_t v, const Record& rec) { return v < rec.rev.main; });
    if (it == h.begin()) return nullptr;
    r = &*std::prev(it);
  }
  return r->tombstone ? nullptr : r;
}

template <typename F>
void MvccStore::visit(std::string_view key, std::string_view end, int64_t rev, F&& f) const {
  if (end.empty()) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    if (const Record* r = at(it->second, rev)) f(Hit{&it->first, r});
    return;
  }
  const bool unbounded = is_gte_range(end);
  for (auto it = index_.lower_bound(key); it != index_.end(); ++it) {
    if (!unbounded && std::string_view(it->first) >= end) break;
    if (const Record* r = at(it->second, rev)) {
      if (!f(Hit{&it->first, r})) break;
    }
  }
}

void MvccStore::fill_kv(const std::string& key, const Record& r, bool keys_only,
                        mvccpb::KeyValue* kv) {
  kv->set_key(key);
  kv->set_create_revision(r.create_revision);
  kv->set_mod_revision(r.rev.main);
  kv->set_version(r.version);
  if (!keys_only) kv->set_value(r.value);
  kv->set_lease(r.lease);
}

Result MvccStore::range(const pb::RangeRequest& req, pb::RangeResponse* resp) const {
  if (Status s = validate(req); !s.ok()) return {std::move(s), 0};
  return range_at(req, current_rev_, resp);
}

// etcd: applierV3backend.Range + storeTxnRead.rangeKeys. `cur_rev` is the revision the read
// view is at (inside a write txn that has changed something: the txn's revision).
Result MvccStore::range_at(const pb::RangeRequest& req, int64_t cur_rev,
                           pb::RangeResponse* resp) const {
  int64_t limit = req.limit();
  if (req.sort_order() != pb::RangeRequest::NONE || req.min_mod_revision() != 0 ||
      req.max_mod_revision() != 0 || req.min_create_revision() != 0 ||
      req.max_create_revision() != 0) {
    limit = 0;  // fetch everything; sort and truncate afterwards
  }
  if (limit > 0) ++limit;  // one extra for `more`

  int64_t rev = req.revision();
  if (rev > cur_rev) return {errors::future_rev(), 0};
  if (rev <= 0) rev = cur_rev;
  if (rev < compact_rev_) return {errors::compacted(), 0};

  std::vector<Hit> hits;
  int64_t count = 0;
  const bool count_only = req.count_only();
  visit(req.key(), req.range_end(), rev, [&](Hit h) {
    ++count;
    if (!count_only && (limit <= 0 || static_cast<int64_t>(hits.size()) < limit)) {
      hits.push_back(h);
    }
    return true;
  });

  auto prune = [&](auto&& drop) { std::erase_if(hits, drop); };
  if (req.max_mod_revision() != 0) {
    prune([&](const Hit& h) { return h.rec->rev.main > req.max_mod_revision(); });
  }
  if (req.min_mod_revision() != 0) {
    prune([&](const Hit& h) { return h.rec->rev.main < req.min_mod_revision(); });
  }
  if (req.max_create_revision() != 0) {
    prune([&](const Hit& h) { return h.rec->create_revision > req.max_create_revision(); });
  }
  if (req.min_create_revision() != 0) {
    prune([&](const Hit& h) { return h.rec->create_revision < req.min_create_revision(); });
  }

  auto order = req.sort_order();
  if (req.sort_target() != pb::RangeRequest::KEY && order == pb::RangeRequest::NONE) {
    order = pb::RangeRequest::ASCEND;  // hits are key-ordered; other targets default to ascend
  }
  if (order != pb::RangeRequest::NONE) {
    // -1/0/1 of a vs b by the sort target. Ties keep key order (a stable sort; etcd's Go sort
    // is unstable, so for ties any order is etcd-compatible).
    auto cmp = [&](const Hit& a, const Hit& b) -> int {
      switch (req.sort_target()) {
        case pb::RangeRequest::KEY: return compare_bytes(*a.key, *b.key);
        case pb::RangeRequest::VERSION: return compare_int(a.rec->version, b.rec->version);
        case pb::RangeRequest::CREATE:
          return compare_int(a.rec->create_revision, b.rec->create_revision);
        case pb::RangeRequest::MOD: return compare_int(a.rec->rev.main, b.rec->rev.main);
        case pb::RangeRequest::VALUE: return compare_bytes(a.rec->value, b.rec->value);
        default: return 0;  // unknown target (a newer client): keep key order
      }
    };
    if (order == pb::RangeRequest::DESCEND) {
      std::stable_sort(hits.begin(), hits.end(),
                       [&](const Hit& a, const Hit& b) { return cmp(a, b) > 0; });
    } else if (order == pb::RangeRequest::ASCEND) {
      std::stable_sort(hits.begin(), hits.end(),
                       [&](const Hit& a, const Hit& b) { return cmp(a, b) < 0; });
    }
  }

  bool more = false;
  if (req.limit() > 0 && static_cast<int64_t>(hits.size()) > req.limit()) {
    hits.resize(static_cast<size_t>(req.limit()));
    more = true;
  }

  resp->mutable_header()->set_revision(cur_rev);
  resp->set_more(more);
  resp->set_count(count);
  resp->mutable_kvs()->Reserve(static_cast<int>(hits.size()));
  for (const Hit& h : hits) fill_kv(*h.key, *h.rec, req.keys_only(), resp->add_kvs());
  return {Status::Ok(), cur_rev};
}

// ---- Writes -------------------------------------------------------------------------------------

void MvccStore::write_record(WriteTxn& tw, std::string_view key, Record rec) {
  rec.rev = Revision{tw.begin_rev + 1, tw.changes++};
  auto it = index_.find(key);
  if (it == index_.end()) it = index_.emplace(std::string(key), History{}).first;
  BALSA_ASSERT(it->second.empty() || it->second.back().rev < rec.rev,
               "kv: revision {}.{} written out of order", rec.rev.main, rec.rev.sub);
  it->second.push_back(std::move(rec));
  ++record_count_;
  tw.changed_keys.push_back(&it->first);
}

// Undoes a write txn's changes: they are the newest records of their keys.
void MvccStore::rollback(WriteTxn& tw) {
  for (auto k = tw.changed_keys.rbegin(); k != tw.changed_keys.rend(); ++k) {
    auto it = index_.find(**k);
    BALSA_ASSERT(it != index_.end() && !it->second.empty() &&
                     it->second.back().rev.main == tw.begin_rev + 1,
                 "kv: rollback of a change that is not the newest");
    it->second.pop_back();
    --record_count_;
    if (it->second.empty()) index_.erase(it);
  }
  tw.changed_keys.clear();
  tw.changes = 0;
}

void MvccStore::end_write(const WriteTxn& tw) {
  if (tw.changes == 0) return;
  ++current_rev_;
  if (!options_.on_events) return;
  std::vector<mvccpb::Event> evs(tw.changed_keys.size());
  for (size_t i = 0; i < tw.changed_keys.size(); ++i) {
    const History& h = index_.find(*tw.changed_keys[i])->second;
    const Revision want{current_rev_, static_cast<int64_t>(i)};
    auto r = std::find_if(h.rbegin(), h.rend(), [&](const Record& x) { return x.rev == want; });
    BALSA_ASSERT(r != h.rend(), "kv: change {}.{} not found", want.main, want.sub);
    fill_event(*tw.changed_keys[i], *r, &evs[i]);
  }
  options_.on_events(current_rev_, std::move(evs));
}

void MvccStore::fill_event(const std::string& key, const Record& r, mvccpb::Event* ev) {
  if (r.tombstone) {
    ev->set_type(mvccpb::Event::DELETE);
    ev->mutable_kv()->set_key(key);
    ev->mutable_kv()->set_mod_revision(r.rev.main);
  } else {
    ev->set_type(mvccpb::Event::PUT);
    fill_kv(key, r, false, ev->mutable_kv());
  }
}

Result MvccStore::events(std::string_view key, std::string_view range_end, int64_t start_revision,
                         int64_t end_revision, size_t limit,
                         std::vector<mvccpb::Event>* out) const {
  if (end_revision > current_rev_) return {errors::future_rev(), 0};
  if (end_revision <= 0) end_revision = current_rev_;
  if (start_revision < compact_rev_) return {errors::compacted(), 0};
  struct Item {
    Revision rev;
    const std::string* key;
    const Record* rec;
  };
  std::vector<Item> items;
  auto collect = [&](const std::string& k, const History& h) {
    auto from = std::lower_bound(h.begin(), h.end(), start_revision,
                                 [](const Record& r, int64_t v) { return r.rev.main < v; });
    for (; from != h.end() && from->rev.main <= end_revision; ++from) {
      items.push_back({from->rev, &k, &*from});
    }
  };
  if (range_end.empty()) {
    if (auto it = index_.find(key); it != index_.end()) collect(it->first, it->second);
  } else {
    const bool unbounded = is_gte_range(range_end);
    for (auto it = index_.lower_bound(key); it != index_.end(); ++it) {
      if (!unbounded && std::string_view(it->first) >= range_end) break;
      collect(it->first, it->second);
    }
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.rev < b.rev; });
  if (limit > 0 && items.size() > limit) items.resize(limit);
  out->clear();
  out->resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) fill_event(*items[i].key, *items[i].rec, &(*out)[i]);
  return {Status::Ok(), current_rev_};
}

// etcd: applierV3backend.Put with a write txn + storeTxnWrite.put. The caller has checked the
// lease. Fails only with "key not found" (ignore_value/ignore_lease on a missing key), before
// changing anything.
Status MvccStore::put_in(WriteTxn& tw, const pb::PutRequest& req, pb::PutResponse* resp) {
  const int64_t rev = tw.begin_rev + 1;
  std::string value;
  int64_t lease = req.lease();
  if (req.ignore_value() || req.ignore_lease() || req.prev_kv()) {
    const Record* prev = nullptr;
    if (auto it = index_.find(req.key()); it != index_.end()) prev = at(it->second, tw.read_rev());
    if ((req.ignore_value() || req.ignore_lease()) && prev == nullptr) {
      return errors::key_not_found();
    }
    if (prev != nullptr) {
      if (req.ignore_value()) value = prev->value;
      if (req.ignore_lease()) lease = prev->lease;
      if (req.prev_kv()) fill_kv(req.key(), *prev, false, resp->mutable_prev_kv());
    }
  }
  if (!req.ignore_value()) value = req.value();

  Record rec;
  rec.create_revision = rev;
  rec.version = 1;
  if (auto it = index_.find(req.key()); it != index_.end()) {
    if (const Record* cur = at(it->second, rev)) {
      rec.create_revision = cur->create_revision;
      rec.version = cur->version + 1;
    }
  }
  rec.lease = lease;
  rec.value = std::move(value);
  write_record(tw, req.key(), std::move(rec));
  resp->mutable_header()->set_revision(rev);
  return Status::Ok();
}

// etcd: applierV3backend.DeleteRange with a write txn + storeTxnWrite.DeleteRange.
void MvccStore::delete_in(WriteTxn& tw, const pb::DeleteRangeRequest& req,
                          pb::DeleteRangeResponse* resp) {
  std::vector<const std::string*> keys;  // map keys: stable while we append to histories
  visit(req.key(), req.range_end(), tw.read_rev(), [&](Hit h) {
    keys.push_back(h.key);
    if (req.prev_kv()) fill_kv(*h.key, *h.rec, false, resp->add_prev_kvs());
    return true;
  });
  for (const std::string* k : keys) {
    Record tomb;
    tomb.tombstone = true;
    write_record(tw, *k, std::move(tomb));
  }
  resp->set_deleted(static_cast<int64_t>(keys.size()));
  resp->mutable_header()->set_revision(tw.changes > 0 ? tw.begin_rev + 1 : tw.begin_rev);
}

Result MvccStore::put(const pb::PutRequest& req, pb::PutResponse* resp) {
  if (Status s = validate(req); !s.ok()) return {std::move(s), 0};
  if (req.lease() != 0 && !(options_.lease_exists && options_.lease_exists(req.lease()))) {
    return {errors::lease_not_found(), 0};
  }
  WriteTxn tw{current_rev_};
  if (Status s = put_in(tw, req, resp); !s.ok()) return {std::move(s), 0};
  end_write(tw);
  return {Status::Ok(), resp->header().revision()};
}

Result MvccStore::delete_range(const pb::DeleteRangeRequest& req, pb::DeleteRangeResponse* resp) {
  if (Status s = validate(req); !s.ok()) return {std::move(s), 0};
  WriteTxn tw{current_rev_};
  delete_in(tw, req, resp);
  end_write(tw);
  return {Status::Ok(), resp->header().revision()};
}

// ---- Txn ----------------------------------------------------------------------------------------

// etcd: applyCompare. A compare over a range holds if it holds for every key in it; over no
// key it compares against an all-zero KeyValue, except that a VALUE compare then fails.
bool MvccStore::compare(const pb::Compare& c, int64_t rev) const {
  bool any = false;
  bool all = true;
  auto check = [&](const Record* r) {
    int result = 0;
    const int64_t create = r ? r->create_revision : 0;
    const int64_t mod = r ? r->rev.main : 0;
    const int64_t version = r ? r->version : 0;
    const int64_t lease = r ? r->lease : 0;
    switch (c.target()) {
      case pb::Compare::VALUE: result = compare_bytes(r ? r->value : "", c.value()); break;
      case pb::Compare::CREATE: result = compare_int(create, c.create_revision()); break;
      case pb::Compare::MOD: result = compare_int(mod, c.mod_revision()); break;
      case pb::Compare::VERSION: result = compare_int(version, c.version()); break;
      case pb::Compare::LEASE: result = compare_int(lease, c.lease()); break;
      default: break;
    }
    switch (c.result()) {
      case pb::Compare::EQUAL: return result == 0;
      case pb::Compare::NOT_EQUAL: return result != 0;
      case pb::Compare::GREATER: return result > 0;
      case pb::Compare::LESS: return result < 0;
      default: return true;
    }
  };
  visit(c.key(), c.range_end(), rev, [&](Hit h) {
    any = true;
    all = check(h.rec);
    return all;
  });
  if (!any) return c.target() != pb::Compare::VALUE && check(nullptr);
  return all;
}

// etcd: compareToPath. Pre-order: this txn's outcome, then each nested txn's path in the
// chosen branch. Every compare reads the state before the txn.
void MvccStore::txn_path(const pb::TxnRequest& req, int64_t rev, std::vector<bool>* path) const {
  bool ok = true;
  for (const auto& c : req.compare()) {
    if (!compare(c, rev)) {
      ok = false;
      break;
    }
  }
  path->push_back(ok);
  for (const auto& op : ok ? req.success() : req.failure()) {
    if (op.request_case() == pb::RequestOp::kRequestTxn) txn_path(op.request_txn(), rev, path);
  }
}

Status MvccStore::check_put_in_txn(const pb::PutRequest& req, int64_t rev) const {
  if (req.ignore_value() || req.ignore_lease()) {
    auto it = index_.find(req.key());
    if (it == index_.end() || at(it->second, rev) == nullptr) return errors::key_not_found();
  }
  if (req.lease() != 0 && !(options_.lease_exists && options_.lease_exists(req.lease()))) {
    return errors::lease_not_found();
  }
  return Status::Ok();
}

Status MvccStore::check_range_in_txn(const pb::RangeRequest& req, int64_t rev) const {
  if (req.revision() == 0) return Status::Ok();
  if (req.revision() > rev) return errors::future_rev();
  if (req.revision() < compact_rev_) return errors::compacted();
  return Status::Ok();
}

// etcd: checkRequests over the chosen branches, puts first (all of them), then ranges.
Status MvccStore::check_txn_ops(const pb::TxnRequest& req, const std::vector<bool>& path,
                                size_t* pos, int64_t rev, bool puts) const {
  const bool ok = path[(*pos)++];
  for (const auto& op : ok ? req.success() : req.failure()) {
    Status s;
    switch (op.request_case()) {
      case pb::RequestOp::kRequestTxn: s = check_txn_ops(op.request_txn(), path, pos, rev, puts); break;
      case pb::RequestOp::kRequestPut:
        if (puts) s = check_put_in_txn(op.request_put(), rev);
        break;
      case pb::RequestOp::kRequestRange:
        if (!puts) s = check_range_in_txn(op.request_range(), rev);
        break;
      case pb::RequestOp::kRequestDeleteRange:
      case pb::RequestOp::REQUEST_NOT_SET: break;
    }
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status MvccStore::apply_txn(WriteTxn& tw, const pb::TxnRequest& req,
                            const std::vector<bool>& path, size_t* pos, pb::TxnResponse* resp) {
  const bool ok = path[(*pos)++];
  resp->set_succeeded(ok);
  resp->mutable_header();  // nested txns carry an empty header, as etcd's do
  for (const auto& op : ok ? req.success() : req.failure()) {
    pb::ResponseOp* r = resp->add_responses();
    switch (op.request_case()) {
      case pb::RequestOp::kRequestRange: {
        Result res = range_at(op.request_range(), tw.read_rev(), r->mutable_response_range());
        BALSA_ASSERT(res.ok(), "kv: txn range failed after its checks: {}", res.status.message);
        break;
      }
      case pb::RequestOp::kRequestPut:
        // Can fail only for ignore_value/ignore_lease on a key deleted earlier in this txn by
        // a "from key" delete, which etcd's overlap check lets through (etcd 3.4 panics
        // there); the caller rolls the txn back and reports "key not found".
        if (Status s = put_in(tw, op.request_put(), r->mutable_response_put()); !s.ok()) return s;
        break;
      case pb::RequestOp::kRequestDeleteRange:
        delete_in(tw, op.request_delete_range(), r->mutable_response_delete_range());
        break;
      case pb::RequestOp::kRequestTxn:
        if (Status s = apply_txn(tw, op.request_txn(), path, pos, r->mutable_response_txn());
            !s.ok()) {
          return s;
        }
        break;
      case pb::RequestOp::REQUEST_NOT_SET: break;  // rejected by validate()
    }
  }
  return Status::Ok();
}

Result MvccStore::txn(const pb::TxnRequest& req, pb::TxnResponse* resp) {
  if (Status s = validate(req, options_.max_txn_ops); !s.ok()) return {std::move(s), 0};
  std::vector<bool> path;
  txn_path(req, current_rev_, &path);
  size_t pos = 0;
  if (Status s = check_txn_ops(req, path, &pos, current_rev_, true); !s.ok()) return {s, 0};
  pos = 0;
  if (Status s = check_txn_ops(req, path, &pos, current_rev_, false); !s.ok()) return {s, 0};

  WriteTxn tw{current_rev_};
  pos = 0;
  if (Status s = apply_txn(tw, req, path, &pos, resp); !s.ok()) {
    rollback(tw);
    resp->Clear();
    return {std::move(s), 0};
  }
  const int64_t rev = tw.read_rev();
  end_write(tw);
  resp->mutable_header()->set_revision(rev);
  return {Status::Ok(), rev};
}

// ---- Compaction ---------------------------------------------------------------------------------

Result MvccStore::compact(const pb::CompactionRequest& req, pb::CompactionResponse* resp) {
  const int64_t rev = req.revision();
  if (rev <= compact_rev_) return {errors::compacted(), 0};
  if (rev > current_rev_) return {errors::future_rev(), 0};
  compact_rev_ = rev;
  compact_to(rev);
  resp->mutable_header()->set_revision(current_rev_);
  return {Status::Ok(), current_rev_};
}

// etcd: treeIndex.Compact + the backend deletes of scheduleCompaction. Per key, keep the
// record the key had at `rev` (the last one <= rev) unless it is a tombstone, and everything
// newer; drop the key once nothing is left. O(keys + dropped records).
void MvccStore::compact_to(int64_t rev) {
  for (auto it = index_.begin(); it != index_.end();) {
    History& h = it->second;
    auto newer = std::upper_bound(h.begin(), h.end(), rev,
                                  [](int64_t v, const Record& r) { return v < r.rev.main; });
    if (newer != h.begin()) {
      auto keep_from = std::prev(newer);
      if (keep_from->tombstone) keep_from = newer;
      record_count_ -= static_cast<size_t>(keep_from - h.begin());
      h.erase(h.begin(), keep_from);
    }
    if (h.empty()) {
      it = index_.erase(it);
    } else {
      if (h.capacity() > 2 * h.size() + 4) h.shrink_to_fit();
      ++it;
    }
  }
}

// ---- HashKV -------------------------------------------------------------------------------------

Result MvccStore::hash_kv(int64_t revision, pb::HashKVResponse* resp) const {
  if (revision > 0 && revision <= compact_rev_) return {errors::compacted(), 0};
  if (revision > 0 && revision > current_rev_) return {errors::future_rev(), 0};
  const int64_t rev = revision == 0 ? current_rev_ : revision;

  struct Item {
    Revision rev;
    const std::string* key;
    const Record* rec;
  };
  std::vector<Item> items;
  // etcd's "keep" set for a compaction at `rev`: each key's record at rev, unless a tombstone.
  // Records at or below the compact revision count only if kept (when anything is kept).
  std::vector<Item> old_items;
  std::set<Revision> keep;
  for (const auto& [key, h] : index_) {
    auto newer = std::upper_bound(h.begin(), h.end(), rev,
                                  [](int64_t v, const Record& r) { return v < r.rev.main; });
    if (newer != h.begin() && !std::prev(newer)->tombstone) keep.insert(std::prev(newer)->rev);
    for (auto r = h.begin(); r != newer; ++r) {
      (r->rev.main > compact_rev_ ? items : old_items).push_back({r->rev, &key, &*r});
    }
  }
  for (const Item& it : old_items) {
    if (keep.empty() || keep.contains(it.rev)) items.push_back(it);
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.rev < b.rev; });

  Crc32c crc;
  crc.update("key");
  std::string buf;
  mvccpb::KeyValue kv;
  for (const Item& it : items) {
    char rb[18];
    for (int i = 0; i < 8; ++i) {
      rb[i] = static_cast<char>(static_cast<uint64_t>(it.rev.main) >> (56 - 8 * i));
      rb[9 + i] = static_cast<char>(static_cast<uint64_t>(it.rev.sub) >> (56 - 8 * i));
    }
    rb[8] = '_';
    rb[17] = 't';
    crc.update(std::string_view(rb, it.rec->tombstone ? 18 : 17));
    kv.Clear();
    if (it.rec->tombstone) {
      kv.set_key(*it.key);  // etcd stores a tombstone as KeyValue{Key: key}
    } else {
      fill_kv(*it.key, *it.rec, false, &kv);
    }
    buf.clear();
    kv.SerializeToString(&buf);
    crc.update(buf);
  }
  resp->set_hash(crc.value());
  resp->set_compact_revision(compact_rev_);
  resp->mutable_header()->set_revision(current_rev_);
  return {Status::Ok(), current_rev_};
}

// ---- Snapshots ----------------------------------------------------------------------------------
//
// Image format, all integers little-endian, fixed width:
//   "BALSAKV1"
//   i64 current_revision, i64 compact_revision, u64 key_count
//   key_count times, keys in strictly increasing byte order:
//     u32 key_len, key bytes, u32 record_count (>= 1)
//     record_count times, revisions strictly increasing:
//       i64 main, i64 sub, u8 kind (0 = put, 1 = tombstone)
//       put only: i64 create_revision, i64 version, i64 lease, u32 value_len, value bytes
//   u32 CRC-32C of every byte before it
// It is written in chunks of about chunk_bytes (large values go straight through).

void MvccStore::save(ByteSink& out, size_t chunk_bytes) const {
  ChunkWriter w(out, std::max<size_t>(chunk_bytes, 64));
  w.raw(kSnapshotMagic);
  w.i64(current_rev_);
  w.i64(compact_rev_);
  w.i64(static_cast<int64_t>(index_.size()));
  for (const auto& [key, h] : index_) encode_key(w, key, h, h.size());
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
  w.finish();
}

void MvccStore::restore(ByteSource& in) {
  ChunkReader r(in);
  auto fail = [](const char* what) { throw std::runtime_error(std::string("kv snapshot: ") + what); };
  std::string magic(kSnapshotMagic.size(), '\0');
  for (char& c : magic) c = static_cast<char>(r.u8());
  if (magic != kSnapshotMagic) fail("bad magic");
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
  const uint32_t computed = r.crc();
  if (r.trailer() != computed) fail("checksum mismatch");

  index_ = std::move(index);
  current_rev_ = current;
  compact_rev_ = compacted;
  record_count_ = records;
}

bool MvccStore::operator==(const MvccStore& o) const {
  return current_rev_ == o.current_rev_ && compact_rev_ == o.compact_rev_ && index_ == o.index_;
}

}  // namespace balsa::kv
