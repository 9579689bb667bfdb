#include "kv/mvcc_store.h"

// MvccStore request validation: what etcd's gRPC layer (v3rpc/key.go) checks before a request
// is proposed. Pure functions of the request; the model lives in mvcc_store.cc, the snapshot
// image codec in mvcc_image.cc.

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace balsa::kv {
namespace {

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
}  // namespace

// ---- Validation ---------------------------------------------------------------------------------

Status MvccStore::validate(const pb::RangeRequest& req) {
  if (req.key().empty()) return errors::empty_key();
  // An unknown sort target or order (a newer client, or garbage) is refused, as etcd 3.5 does,
  // rather than silently returning an unsorted result (etcd 3.4.23 crashes on it).
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

}  // namespace balsa::kv
