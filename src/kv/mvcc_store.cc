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

int compare_int(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

int compare_bytes(std::string_view a, std::string_view b) {
  const int c = a.compare(b);  // char_traits<char>::compare is memcmp: unsigned bytes
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

MvccStore::MvccStore(Options options) : options_(std::move(options)) {}

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
  // Lease attachments follow each changed key from its record before the write to its newest
  // one (idempotent, so a key changed twice in a txn is fine). Done here, after the write is
  // final, so a rolled-back txn never touches the table.
  for (const std::string* k : tw.changed_keys) {
    const History& h = index_.find(*k)->second;
    if (const Record* old = at(h, tw.begin_rev); old != nullptr && old->lease != 0) {
      leases_.detach(old->lease, *k);
    }
    if (!h.back().tombstone && h.back().lease != 0) leases_.attach(h.back().lease, *k);
  }
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
  if (req.lease() != 0 && !leases_.contains(req.lease())) return {errors::lease_not_found(), 0};
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
  if (req.lease() != 0 && !leases_.contains(req.lease())) return errors::lease_not_found();
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

}  // namespace balsa::kv
