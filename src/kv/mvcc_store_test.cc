// Semantics of MvccStore, checked against etcd v3.4's mvcc and applier code
// (go.etcd.io/etcd/mvcc/kvstore_txn.go, key_index.go, etcdserver/apply.go, v3rpc/key.go).
#include "kv/mvcc_store.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kv/crc32c.h"

namespace balsa::kv {
namespace {

// ---- Request builders -------------------------------------------------------------------------

pb::PutRequest Put(std::string k, std::string v) {
  pb::PutRequest r;
  r.set_key(std::move(k));
  r.set_value(std::move(v));
  return r;
}
pb::RangeRequest Get(std::string k, std::string end = "", int64_t rev = 0) {
  pb::RangeRequest r;
  r.set_key(std::move(k));
  r.set_range_end(std::move(end));
  r.set_revision(rev);
  return r;
}
pb::DeleteRangeRequest Del(std::string k, std::string end = "") {
  pb::DeleteRangeRequest r;
  r.set_key(std::move(k));
  r.set_range_end(std::move(end));
  return r;
}
void grant(MvccStore& s, int64_t id, int64_t ttl = 10) {
  pb::LeaseGrantRequest g;
  g.set_id(id);
  g.set_ttl(ttl);
  pb::LeaseGrantResponse resp;
  ASSERT_TRUE(s.lease_grant(g, &resp).ok());
}
pb::RequestOp OpPut(std::string k, std::string v) {
  pb::RequestOp op;
  *op.mutable_request_put() = Put(std::move(k), std::move(v));
  return op;
}
pb::RequestOp OpGet(std::string k, std::string end = "") {
  pb::RequestOp op;
  *op.mutable_request_range() = Get(std::move(k), std::move(end));
  return op;
}
pb::RequestOp OpDel(std::string k, std::string end = "") {
  pb::RequestOp op;
  *op.mutable_request_delete_range() = Del(std::move(k), std::move(end));
  return op;
}
pb::RequestOp OpTxn(pb::TxnRequest t) {
  pb::RequestOp op;
  *op.mutable_request_txn() = std::move(t);
  return op;
}
pb::Compare Cmp(std::string k, pb::Compare::CompareTarget target, pb::Compare::CompareResult result,
                int64_t n, std::string value = "") {
  pb::Compare c;
  c.set_key(std::move(k));
  c.set_target(target);
  c.set_result(result);
  switch (target) {
    case pb::Compare::VERSION: c.set_version(n); break;
    case pb::Compare::CREATE: c.set_create_revision(n); break;
    case pb::Compare::MOD: c.set_mod_revision(n); break;
    case pb::Compare::VALUE: c.set_value(value); break;
    case pb::Compare::LEASE: c.set_lease(n); break;
    default: break;
  }
  return c;
}

// The store under test plus shorthands that assert success.
struct Kv {
  MvccStore s;
  int64_t put(const std::string& k, const std::string& v) {
    pb::PutResponse resp;
    Result r = s.put(Put(k, v), &resp);
    EXPECT_TRUE(r.ok()) << r.status.message;
    return r.revision;
  }
  int64_t del(const std::string& k, const std::string& end = "") {
    pb::DeleteRangeResponse resp;
    Result r = s.delete_range(Del(k, end), &resp);
    EXPECT_TRUE(r.ok()) << r.status.message;
    return resp.deleted();
  }
  pb::RangeResponse get(const pb::RangeRequest& req) {
    pb::RangeResponse resp;
    Result r = s.range(req, &resp);
    EXPECT_TRUE(r.ok()) << r.status.message;
    return resp;
  }
  pb::RangeResponse get(const std::string& k, const std::string& end = "") {
    return get(Get(k, end));
  }
  std::vector<std::string> keys(const pb::RangeRequest& req) {
    std::vector<std::string> out;
    const pb::RangeResponse resp = get(req);
    for (const auto& kv : resp.kvs()) out.push_back(kv.key());
    return out;
  }
  pb::TxnResponse txn(const pb::TxnRequest& t) {
    pb::TxnResponse resp;
    Result r = s.txn(t, &resp);
    EXPECT_TRUE(r.ok()) << r.status.message;
    return resp;
  }
  Status txn_status(const pb::TxnRequest& t) {
    pb::TxnResponse resp;
    return s.txn(t, &resp).status;
  }
  Status compact(int64_t rev) {
    pb::CompactionRequest req;
    req.set_revision(rev);
    pb::CompactionResponse resp;
    return s.compact(req, &resp).status;
  }
  uint32_t hash(int64_t rev = 0) {
    pb::HashKVResponse resp;
    Result r = s.hash_kv(rev, &resp);
    EXPECT_TRUE(r.ok()) << r.status.message;
    return resp.hash();
  }
};

// ---- Revisions, versions, tombstones ------------------------------------------------------------

TEST(MvccStore, FreshStoreIsAtRevisionOneAndFirstPutReturnsTwo) {
  Kv kv;
  EXPECT_EQ(kv.s.current_revision(), 1);
  EXPECT_EQ(kv.s.compact_revision(), -1);
  EXPECT_EQ(kv.get("a").header().revision(), 1);
  EXPECT_EQ(kv.put("a", "1"), 2);
  EXPECT_EQ(kv.s.current_revision(), 2);
}

TEST(MvccStore, CreateModVersionAcrossDeleteAndRecreate) {
  Kv kv;
  kv.put("a", "1");  // 2
  kv.put("a", "2");  // 3
  auto r = kv.get("a");
  ASSERT_EQ(r.kvs_size(), 1);
  EXPECT_EQ(r.kvs(0).value(), "2");
  EXPECT_EQ(r.kvs(0).create_revision(), 2);
  EXPECT_EQ(r.kvs(0).mod_revision(), 3);
  EXPECT_EQ(r.kvs(0).version(), 2);
  EXPECT_EQ(r.kvs(0).lease(), 0);
  EXPECT_EQ(kv.del("a"), 1);  // 4: tombstone
  EXPECT_EQ(kv.get("a").kvs_size(), 0);
  EXPECT_EQ(kv.s.current_revision(), 4);
  kv.put("a", "3");  // 5: a new generation
  r = kv.get("a");
  EXPECT_EQ(r.kvs(0).create_revision(), 5);
  EXPECT_EQ(r.kvs(0).mod_revision(), 5);
  EXPECT_EQ(r.kvs(0).version(), 1);
  // History is intact underneath.
  EXPECT_EQ(kv.get(Get("a", "", 3)).kvs(0).value(), "2");
  EXPECT_EQ(kv.get(Get("a", "", 4)).kvs_size(), 0);
  EXPECT_EQ(kv.get(Get("a", "", 1)).kvs_size(), 0);
}

TEST(MvccStore, DeleteOfNothingDoesNotAdvanceTheRevision) {
  Kv kv;
  kv.put("a", "1");
  pb::DeleteRangeResponse resp;
  Result r = kv.s.delete_range(Del("zzz"), &resp);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(resp.deleted(), 0);
  EXPECT_EQ(r.revision, 2);
  EXPECT_EQ(resp.header().revision(), 2);
  EXPECT_EQ(kv.s.current_revision(), 2);
}

TEST(MvccStore, DeleteRangeWithPrevKvsCountsAndUsesOneRevision) {
  Kv kv;
  kv.put("a", "1");
  kv.put("b", "2");
  kv.put("c", "3");
  pb::DeleteRangeRequest req = Del("a", "c");
  req.set_prev_kv(true);
  pb::DeleteRangeResponse resp;
  Result r = kv.s.delete_range(req, &resp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(resp.deleted(), 2);
  EXPECT_EQ(r.revision, 5);
  ASSERT_EQ(resp.prev_kvs_size(), 2);
  EXPECT_EQ(resp.prev_kvs(0).key(), "a");
  EXPECT_EQ(resp.prev_kvs(1).value(), "2");
  EXPECT_EQ(kv.keys(Get("a", std::string(1, '\0'))), std::vector<std::string>{"c"});
}

// ---- Put options --------------------------------------------------------------------------------

TEST(MvccStore, PutPrevKvIgnoreValueIgnoreLeaseAndLeases) {
  Kv kv;
  pb::PutRequest p = Put("a", "1");
  p.set_prev_kv(true);
  pb::PutResponse resp;
  ASSERT_TRUE(kv.s.put(p, &resp).ok());
  EXPECT_FALSE(resp.has_prev_kv());

  p = Put("a", "2");
  p.set_prev_kv(true);
  resp.Clear();
  ASSERT_TRUE(kv.s.put(p, &resp).ok());
  EXPECT_EQ(resp.prev_kv().value(), "1");
  EXPECT_EQ(resp.prev_kv().mod_revision(), 2);
  EXPECT_EQ(resp.header().revision(), 3);

  // ignore_value keeps the value, still bumps version and revision.
  p = Put("a", "");
  p.set_ignore_value(true);
  resp.Clear();
  ASSERT_TRUE(kv.s.put(p, &resp).ok());
  auto g = kv.get("a");
  EXPECT_EQ(g.kvs(0).value(), "2");
  EXPECT_EQ(g.kvs(0).version(), 3);
  EXPECT_EQ(g.kvs(0).mod_revision(), 4);

  // ignore_value / ignore_lease on a missing key.
  p = Put("missing", "");
  p.set_ignore_value(true);
  Result r = kv.s.put(p, &resp);
  EXPECT_EQ(r.status, errors::key_not_found());
  EXPECT_EQ(r.status.code, Code::kInvalidArgument);
  p = Put("missing", "x");
  p.set_ignore_lease(true);
  EXPECT_EQ(kv.s.put(p, &resp).status, errors::key_not_found());
  EXPECT_EQ(kv.s.current_revision(), 4);

  // Request validation as etcd's gRPC layer does it.
  p = Put("a", "x");
  p.set_ignore_value(true);
  EXPECT_EQ(kv.s.put(p, &resp).status, errors::value_provided());
  p = Put("a", "");
  p.set_ignore_lease(true);
  p.set_lease(7);
  EXPECT_EQ(kv.s.put(p, &resp).status, errors::lease_provided());
  EXPECT_EQ(kv.s.put(Put("", "x"), &resp).status, errors::empty_key());

  // No lease granted: every lease is unknown.
  p = Put("a", "x");
  p.set_lease(7);
  r = kv.s.put(p, &resp);
  EXPECT_EQ(r.status, errors::lease_not_found());
  EXPECT_EQ(r.status.code, Code::kNotFound);
}

TEST(MvccStore, LeaseIsStoredWhenTheLeaseExistsAndKeptByIgnoreLease) {
  MvccStore s;
  grant(s, 7);
  pb::PutRequest p = Put("a", "1");
  p.set_lease(7);
  pb::PutResponse resp;
  ASSERT_TRUE(s.put(p, &resp).ok());
  p = Put("a", "2");
  p.set_ignore_lease(true);
  ASSERT_TRUE(s.put(p, &resp).ok());
  pb::RangeResponse g;
  ASSERT_TRUE(s.range(Get("a"), &g).ok());
  EXPECT_EQ(g.kvs(0).lease(), 7);
  EXPECT_EQ(g.kvs(0).value(), "2");
  p = Put("b", "1");
  p.set_lease(8);
  EXPECT_EQ(s.put(p, &resp).status, errors::lease_not_found());
}

// ---- Range --------------------------------------------------------------------------------------

struct RangeFixture : ::testing::Test {
  Kv kv;
  void SetUp() override {
    kv.put("a", "3");   // 2
    kv.put("b", "1");   // 3
    kv.put("c", "2");   // 4
    kv.put("b", "0");   // 5: b version 2
    kv.put("d", "9");   // 6
    kv.put("e/1", "x"); // 7
    kv.put("e/2", "y"); // 8
    kv.put("f", "z");   // 9
  }
};

TEST_F(RangeFixture, SingleKeyPrefixFromKeyAndEmptyRanges) {
  EXPECT_EQ(kv.keys(Get("b")), std::vector<std::string>{"b"});
  EXPECT_EQ(kv.keys(Get("bb")), std::vector<std::string>{});
  EXPECT_EQ(kv.keys(Get("b", "d")), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(kv.keys(Get("e/", "e0")), (std::vector<std::string>{"e/1", "e/2"}));
  EXPECT_EQ(kv.keys(Get("e/1", std::string(1, '\0'))), (std::vector<std::string>{"e/1", "e/2", "f"}));
  // etcdctl get "" --prefix sends key "\0", range_end "\0": everything.
  EXPECT_EQ(kv.keys(Get(std::string(1, '\0'), std::string(1, '\0'))).size(), 7u);
  EXPECT_EQ(kv.keys(Get("d", "b")), std::vector<std::string>{});  // end before key
  pb::RangeResponse resp;
  EXPECT_EQ(kv.s.range(Get(""), &resp).status, errors::empty_key());
}

TEST_F(RangeFixture, LimitMoreAndCount) {
  pb::RangeRequest r = Get("a", "z");
  r.set_limit(2);
  auto g = kv.get(r);
  EXPECT_EQ(g.kvs_size(), 2);
  EXPECT_TRUE(g.more());
  EXPECT_EQ(g.count(), 7);
  r.set_limit(7);
  g = kv.get(r);
  EXPECT_FALSE(g.more());
  EXPECT_EQ(g.count(), 7);
  r.set_limit(0);
  EXPECT_EQ(kv.get(r).kvs_size(), 7);
  // count_only: no kvs, and etcd reports more=false even with a limit.
  r.set_count_only(true);
  r.set_limit(1);
  g = kv.get(r);
  EXPECT_EQ(g.kvs_size(), 0);
  EXPECT_EQ(g.count(), 7);
  EXPECT_FALSE(g.more());
  EXPECT_EQ(g.header().revision(), 9);
}

TEST_F(RangeFixture, KeysOnly) {
  pb::RangeRequest r = Get("a");
  r.set_keys_only(true);
  auto g = kv.get(r);
  EXPECT_EQ(g.kvs(0).key(), "a");
  EXPECT_EQ(g.kvs(0).value(), "");
  EXPECT_EQ(g.kvs(0).mod_revision(), 2);
}

TEST_F(RangeFixture, SortByEveryTargetAndOrder) {
  struct Case {
    pb::RangeRequest::SortTarget target;
    pb::RangeRequest::SortOrder order;
    std::vector<std::string> want;
  };
  const std::string all_end = "e";  // a, b, c, d
  const std::vector<Case> cases = {
      {pb::RangeRequest::KEY, pb::RangeRequest::NONE, {"a", "b", "c", "d"}},
      {pb::RangeRequest::KEY, pb::RangeRequest::ASCEND, {"a", "b", "c", "d"}},
      {pb::RangeRequest::KEY, pb::RangeRequest::DESCEND, {"d", "c", "b", "a"}},
      // values a=3 b=0 c=2 d=9
      {pb::RangeRequest::VALUE, pb::RangeRequest::ASCEND, {"b", "c", "a", "d"}},
      {pb::RangeRequest::VALUE, pb::RangeRequest::DESCEND, {"d", "a", "c", "b"}},
      // target other than KEY with order NONE sorts ascending (etcd)
      {pb::RangeRequest::VALUE, pb::RangeRequest::NONE, {"b", "c", "a", "d"}},
      // create a=2 b=3 c=4 d=6
      {pb::RangeRequest::CREATE, pb::RangeRequest::DESCEND, {"d", "c", "b", "a"}},
      // mod a=2 c=4 b=5 d=6
      {pb::RangeRequest::MOD, pb::RangeRequest::ASCEND, {"a", "c", "b", "d"}},
      {pb::RangeRequest::MOD, pb::RangeRequest::DESCEND, {"d", "b", "c", "a"}},
      // version: b=2, others 1; ties keep key order
      {pb::RangeRequest::VERSION, pb::RangeRequest::ASCEND, {"a", "c", "d", "b"}},
      {pb::RangeRequest::VERSION, pb::RangeRequest::DESCEND, {"b", "a", "c", "d"}},
  };
  for (const Case& c : cases) {
    pb::RangeRequest r = Get("a", all_end);
    r.set_sort_target(c.target);
    r.set_sort_order(c.order);
    EXPECT_EQ(kv.keys(r), c.want) << "target " << c.target << " order " << c.order;
  }
  // Sorting happens before the limit.
  pb::RangeRequest r = Get("a", all_end);
  r.set_sort_target(pb::RangeRequest::MOD);
  r.set_sort_order(pb::RangeRequest::DESCEND);
  r.set_limit(2);
  auto g = kv.get(r);
  ASSERT_EQ(g.kvs_size(), 2);
  EXPECT_EQ(g.kvs(0).key(), "d");
  EXPECT_EQ(g.kvs(1).key(), "b");
  EXPECT_TRUE(g.more());
  EXPECT_EQ(g.count(), 4);
}

TEST_F(RangeFixture, RevisionFiltersDoNotChangeCount) {
  pb::RangeRequest r = Get("a", "e");
  r.set_min_mod_revision(4);
  EXPECT_EQ(kv.keys(r), (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(kv.get(r).count(), 4);
  r.set_max_mod_revision(5);
  EXPECT_EQ(kv.keys(r), (std::vector<std::string>{"b", "c"}));
  r = Get("a", "e");
  r.set_min_create_revision(3);
  r.set_max_create_revision(4);
  EXPECT_EQ(kv.keys(r), (std::vector<std::string>{"b", "c"}));
  // Filters apply before the limit; `more` counts what survived them.
  r = Get("a", "e");
  r.set_min_mod_revision(4);
  r.set_limit(2);
  auto g = kv.get(r);
  EXPECT_EQ(g.kvs_size(), 2);
  EXPECT_TRUE(g.more());
  r.set_limit(3);
  EXPECT_FALSE(kv.get(r).more());
}

TEST_F(RangeFixture, HistoricalReadsAndRevisionErrors) {
  auto g = kv.get(Get("a", "z", 4));
  EXPECT_EQ(g.count(), 3);  // a, b, c
  EXPECT_EQ(g.kvs(1).value(), "1");
  EXPECT_EQ(g.kvs(1).version(), 1);
  EXPECT_EQ(g.header().revision(), 9);  // the header is the current revision
  pb::RangeResponse resp;
  Result r = kv.s.range(Get("a", "", 10), &resp);
  EXPECT_EQ(r.status, errors::future_rev());
  EXPECT_EQ(r.status.code, Code::kOutOfRange);
  EXPECT_TRUE(kv.s.range(Get("a", "", -3), &resp).ok());  // <= 0 means current

  ASSERT_TRUE(kv.compact(5).ok());
  r = kv.s.range(Get("a", "", 4), &resp);
  EXPECT_EQ(r.status, errors::compacted());
  // Reading exactly at the compact revision still works.
  g = kv.get(Get("a", "z", 5));
  EXPECT_EQ(g.count(), 3);
  EXPECT_EQ(g.kvs(1).value(), "0");
}

// ---- Txn ----------------------------------------------------------------------------------------

TEST(MvccStoreTxn, EveryCompareTargetAndOperator) {
  Kv kv;
  grant(kv.s, 5);
  kv.put("k", "m");            // 2
  pb::PutRequest p = Put("k", "m");
  p.set_lease(5);
  pb::PutResponse pr;
  ASSERT_TRUE(kv.s.put(p, &pr).ok());  // 3: k create 2, mod 3, version 2, lease 5, value "m"

  using C = pb::Compare;
  struct Case {
    C cmp;
    bool want;
  };
  const std::vector<Case> cases = {
      {Cmp("k", C::VALUE, C::EQUAL, 0, "m"), true},
      {Cmp("k", C::VALUE, C::GREATER, 0, "l"), true},
      {Cmp("k", C::VALUE, C::LESS, 0, "n"), true},
      {Cmp("k", C::VALUE, C::NOT_EQUAL, 0, "m"), false},
      {Cmp("k", C::VERSION, C::EQUAL, 2), true},
      {Cmp("k", C::VERSION, C::GREATER, 2), false},
      {Cmp("k", C::VERSION, C::LESS, 3), true},
      {Cmp("k", C::VERSION, C::NOT_EQUAL, 2), false},
      {Cmp("k", C::CREATE, C::EQUAL, 2), true},
      {Cmp("k", C::CREATE, C::GREATER, 1), true},
      {Cmp("k", C::CREATE, C::LESS, 2), false},
      {Cmp("k", C::CREATE, C::NOT_EQUAL, 3), true},
      {Cmp("k", C::MOD, C::EQUAL, 3), true},
      {Cmp("k", C::MOD, C::GREATER, 3), false},
      {Cmp("k", C::MOD, C::LESS, 4), true},
      {Cmp("k", C::MOD, C::NOT_EQUAL, 2), true},
      {Cmp("k", C::LEASE, C::EQUAL, 5), true},
      {Cmp("k", C::LEASE, C::GREATER, 4), true},
      {Cmp("k", C::LEASE, C::LESS, 5), false},
      {Cmp("k", C::LEASE, C::NOT_EQUAL, 0), true},
      // A missing key compares as all zeros ("does not exist" = create_revision 0)...
      {Cmp("nope", C::CREATE, C::EQUAL, 0), true},
      {Cmp("nope", C::VERSION, C::EQUAL, 0), true},
      {Cmp("nope", C::MOD, C::LESS, 1), true},
      // ...except that a VALUE compare on it always fails, even NOT_EQUAL.
      {Cmp("nope", C::VALUE, C::EQUAL, 0, ""), false},
      {Cmp("nope", C::VALUE, C::NOT_EQUAL, 0, "x"), false},
  };
  for (const Case& c : cases) {
    pb::TxnRequest t;
    *t.add_compare() = c.cmp;
    *t.add_success() = OpGet("k");
    auto resp = kv.txn(t);
    EXPECT_EQ(resp.succeeded(), c.want) << c.cmp.ShortDebugString();
    EXPECT_EQ(resp.responses_size(), c.want ? 1 : 0);
    EXPECT_EQ(resp.header().revision(), 3);  // read-only: no new revision
  }
  EXPECT_EQ(kv.s.current_revision(), 3);
}

TEST(MvccStoreTxn, CompareWithRangeEndHoldsForEveryKeyInRange) {
  Kv kv;
  kv.put("a/1", "x");
  kv.put("a/2", "x");
  kv.put("a/3", "y");
  using C = pb::Compare;
  auto run = [&](C c) {
    pb::TxnRequest t;
    *t.add_compare() = std::move(c);
    return kv.txn(t).succeeded();
  };
  C c = Cmp("a/", C::VALUE, C::EQUAL, 0, "x");
  c.set_range_end("a0");
  EXPECT_FALSE(run(c));
  c.set_range_end("a/3");
  EXPECT_TRUE(run(c));
  c = Cmp("a/", C::CREATE, C::GREATER, 0);
  c.set_range_end("a0");
  EXPECT_TRUE(run(c));
  c = Cmp("a/", C::MOD, C::LESS, 4);
  c.set_range_end(std::string(1, '\0'));
  EXPECT_FALSE(run(c));
}

TEST(MvccStoreTxn, OneRevisionForTheWholeTxnAndReadsSeeEarlierWrites) {
  Kv kv;
  kv.put("x", "0");  // 2
  pb::TxnRequest t;
  *t.add_compare() = Cmp("x", pb::Compare::VALUE, pb::Compare::EQUAL, 0, "0");
  *t.add_success() = OpGet("a");
  *t.add_success() = OpPut("a", "1");
  *t.add_success() = OpPut("b", "2");
  *t.add_success() = OpGet("a", "c");
  *t.add_success() = OpDel("x");
  *t.add_failure() = OpPut("fail", "1");
  auto resp = kv.txn(t);
  ASSERT_TRUE(resp.succeeded());
  ASSERT_EQ(resp.responses_size(), 5);
  EXPECT_EQ(resp.header().revision(), 3);
  EXPECT_EQ(resp.responses(0).response_range().kvs_size(), 0);
  EXPECT_EQ(resp.responses(0).response_range().header().revision(), 2);  // before any change
  EXPECT_EQ(resp.responses(1).response_put().header().revision(), 3);
  EXPECT_EQ(resp.responses(3).response_range().count(), 2);  // sees its own puts
  EXPECT_EQ(resp.responses(3).response_range().header().revision(), 3);
  EXPECT_EQ(resp.responses(4).response_delete_range().deleted(), 1);
  EXPECT_EQ(kv.s.current_revision(), 3);
  auto g = kv.get("a", "c");
  EXPECT_EQ(g.kvs(0).mod_revision(), 3);
  EXPECT_EQ(g.kvs(1).mod_revision(), 3);
  EXPECT_EQ(kv.get("fail").kvs_size(), 0);

  // The failure branch.
  resp = kv.txn(t);
  EXPECT_FALSE(resp.succeeded());
  ASSERT_EQ(resp.responses_size(), 1);
  EXPECT_EQ(kv.get("fail").kvs(0).mod_revision(), 4);
}

TEST(MvccStoreTxn, NestedTxnsFollowTheirOwnCompares) {
  Kv kv;
  kv.put("a", "1");  // 2
  pb::TxnRequest inner_ok, inner_fail, outer;
  *inner_ok.add_compare() = Cmp("a", pb::Compare::VERSION, pb::Compare::EQUAL, 1);
  *inner_ok.add_success() = OpPut("b", "ok");
  *inner_fail.add_compare() = Cmp("a", pb::Compare::VERSION, pb::Compare::EQUAL, 7);
  *inner_fail.add_success() = OpPut("c", "never");
  *inner_fail.add_failure() = OpPut("c", "else");
  *inner_fail.add_failure() = OpGet("b");
  *outer.add_compare() = Cmp("a", pb::Compare::VALUE, pb::Compare::EQUAL, 0, "1");
  *outer.add_success() = OpTxn(inner_ok);
  *outer.add_success() = OpTxn(inner_fail);
  auto resp = kv.txn(outer);
  ASSERT_TRUE(resp.succeeded());
  ASSERT_EQ(resp.responses_size(), 2);
  const auto& r0 = resp.responses(0).response_txn();
  const auto& r1 = resp.responses(1).response_txn();
  EXPECT_TRUE(r0.succeeded());
  EXPECT_FALSE(r1.succeeded());
  EXPECT_EQ(r1.responses(1).response_range().kvs(0).value(), "ok");  // sees the sibling's put
  EXPECT_EQ(r0.header().revision(), 0);  // nested txn headers are empty, as in etcd
  EXPECT_EQ(resp.header().revision(), 3);
  EXPECT_EQ(kv.get("c").kvs(0).value(), "else");
  EXPECT_EQ(kv.get("c").kvs(0).mod_revision(), 3);
  EXPECT_EQ(kv.get("b").kvs(0).mod_revision(), 3);
}

TEST(MvccStoreTxn, DuplicateKeyRules) {
  Kv kv;
  auto txn = [](std::vector<pb::RequestOp> ops) {
    pb::TxnRequest t;
    for (auto& op : ops) *t.add_success() = std::move(op);
    return t;
  };
  auto nested = [](std::vector<pb::RequestOp> then_ops, std::vector<pb::RequestOp> else_ops) {
    pb::TxnRequest t;
    for (auto& op : then_ops) *t.add_success() = std::move(op);
    for (auto& op : else_ops) *t.add_failure() = std::move(op);
    return OpTxn(std::move(t));
  };
  const Status dup = errors::duplicate_key();
  EXPECT_EQ(kv.txn_status(txn({OpPut("a", "1"), OpPut("a", "2")})), dup);
  EXPECT_EQ(kv.txn_status(txn({OpPut("a", "1"), OpDel("a")})), dup);
  EXPECT_EQ(kv.txn_status(txn({OpDel("a", "c"), OpPut("b", "1")})), dup);
  EXPECT_EQ(kv.txn_status(txn({OpPut("a", "1"), nested({OpPut("a", "2")}, {})})), dup);
  EXPECT_EQ(kv.txn_status(txn({OpDel("a"), nested({}, {OpPut("a", "2")})})), dup);
  EXPECT_EQ(kv.txn_status(txn({nested({OpDel("a")}, {}), OpPut("a", "2")})), dup);
  // Allowed: the same key in then and else of one nested txn, deletes that overlap each
  // other, puts to different keys, a put beside a range, and a "from key" delete (etcd's
  // interval [key, "\0") is empty, so it never conflicts).
  EXPECT_TRUE(kv.txn_status(txn({nested({OpPut("a", "1")}, {OpPut("a", "2")})})).ok());
  EXPECT_TRUE(kv.txn_status(txn({OpDel("a", "c"), OpDel("b")})).ok());
  EXPECT_TRUE(kv.txn_status(txn({OpPut("a", "1"), OpPut("b", "1"), OpGet("a")})).ok());
  EXPECT_TRUE(kv.txn_status(txn({OpDel("a", std::string(1, '\0')), OpPut("b", "1")})).ok());
  // Failure branch is checked too.
  pb::TxnRequest t;
  *t.add_failure() = OpPut("z", "1");
  *t.add_failure() = OpPut("z", "2");
  EXPECT_EQ(kv.txn_status(t), dup);
}

TEST(MvccStoreTxn, LimitsAndValidation) {
  Kv kv;
  pb::TxnRequest t;
  for (int i = 0; i < 128; ++i) {
    std::string key = "k";  // (not "k" + to_string: GCC 12 -O3 raises a false -Wrestrict on it)
    key += std::to_string(i);
    *t.add_success() = OpPut(key, "v");
  }
  EXPECT_TRUE(kv.txn_status(t).ok());
  *t.add_success() = OpPut("k128", "v");
  Status s = kv.txn_status(t);
  EXPECT_EQ(s, errors::too_many_ops());
  EXPECT_EQ(s.code, Code::kInvalidArgument);
  pb::TxnRequest c;
  for (int i = 0; i < 129; ++i) *c.add_compare() = Cmp("k", pb::Compare::VERSION, pb::Compare::EQUAL, 0);
  EXPECT_EQ(kv.txn_status(c), errors::too_many_ops());
  // A nested txn gets what its parent left: 100 ops at the top leave 28 for the child.
  pb::TxnRequest parent, child;
  for (int i = 0; i < 99; ++i) *parent.add_success() = OpGet("x");
  for (int i = 0; i < 29; ++i) *child.add_success() = OpGet("y");
  *parent.add_success() = OpTxn(child);
  EXPECT_EQ(kv.txn_status(parent), errors::too_many_ops());

  pb::TxnRequest e;
  *e.add_compare() = Cmp("", pb::Compare::VERSION, pb::Compare::EQUAL, 0);
  EXPECT_EQ(kv.txn_status(e), errors::empty_key());
  e.Clear();
  *e.add_success() = OpPut("", "v");
  EXPECT_EQ(kv.txn_status(e), errors::empty_key());
  e.Clear();
  e.add_success();  // an empty RequestOp: etcd says "key not found"
  EXPECT_EQ(kv.txn_status(e), errors::key_not_found());
}

TEST(MvccStoreTxn, FailedChecksChangeNothing) {
  Kv kv;
  kv.put("a", "1");  // 2
  const int64_t rev = kv.s.current_revision();
  pb::TxnRequest t;
  *t.add_success() = OpPut("b", "1");
  pb::RequestOp op = OpPut("missing", "");
  op.mutable_request_put()->set_ignore_value(true);
  *t.add_success() = op;
  EXPECT_EQ(kv.txn_status(t), errors::key_not_found());
  EXPECT_EQ(kv.s.current_revision(), rev);
  EXPECT_EQ(kv.get("b").kvs_size(), 0);

  pb::TxnRequest f;
  *f.add_success() = OpPut("b", "1");
  pb::RequestOp g = OpGet("a");
  g.mutable_request_range()->set_revision(99);
  *f.add_success() = g;
  EXPECT_EQ(kv.txn_status(f), errors::future_rev());
  EXPECT_EQ(kv.s.current_revision(), rev);

  // ignore_value of a key that exists works inside a txn.
  pb::TxnRequest ok;
  pb::RequestOp iv = OpPut("a", "");
  iv.mutable_request_put()->set_ignore_value(true);
  iv.mutable_request_put()->set_prev_kv(true);
  *ok.add_success() = iv;
  auto resp = kv.txn(ok);
  EXPECT_EQ(resp.responses(0).response_put().prev_kv().value(), "1");
  EXPECT_EQ(kv.get("a").kvs(0).value(), "1");
  EXPECT_EQ(kv.get("a").kvs(0).version(), 2);
}

// etcd lets a "from key" delete and an ignore_value put of a key in its range into one txn
// (its overlap check sees the interval [key, "\0") as empty) and then panics applying it.
// Balsa rolls the txn back and reports "key not found" instead.
TEST(MvccStoreTxn, PutIgnoreValueAfterFromKeyDeleteRollsBack) {
  Kv kv;
  kv.put("a", "1");  // 2
  kv.put("b", "1");  // 3
  const uint32_t before = kv.hash();
  pb::TxnRequest t;
  *t.add_success() = OpPut("new", "x");
  *t.add_success() = OpDel("a", std::string(1, '\0'));
  pb::RequestOp iv = OpPut("b", "");
  iv.mutable_request_put()->set_ignore_value(true);
  *t.add_success() = iv;
  EXPECT_EQ(kv.txn_status(t), errors::key_not_found());
  EXPECT_EQ(kv.s.current_revision(), 3);
  EXPECT_EQ(kv.s.record_count(), 2u);
  EXPECT_EQ(kv.s.key_count(), 2u);
  EXPECT_EQ(kv.hash(), before);
  EXPECT_EQ(kv.get("b").kvs(0).version(), 1);
}

TEST(MvccStoreTxn, DeleteTwiceInOneTxnDeletesOnce) {
  Kv kv;
  kv.put("a", "1");
  pb::TxnRequest t;
  *t.add_success() = OpDel("a");
  *t.add_success() = OpDel("a", "b");
  auto resp = kv.txn(t);
  EXPECT_EQ(resp.responses(0).response_delete_range().deleted(), 1);
  EXPECT_EQ(resp.responses(1).response_delete_range().deleted(), 0);
  EXPECT_EQ(resp.responses(1).response_delete_range().header().revision(), 3);
  EXPECT_EQ(kv.s.current_revision(), 3);
}

// ---- Compaction ---------------------------------------------------------------------------------

TEST(MvccStoreCompact, ErrorsAndHistoryRemoval) {
  Kv kv;
  kv.put("a", "1");  // 2
  kv.put("a", "2");  // 3
  kv.put("b", "1");  // 4
  kv.del("b");       // 5
  kv.put("c", "1");  // 6
  EXPECT_EQ(kv.s.record_count(), 5u);
  EXPECT_EQ(kv.compact(7), errors::future_rev());
  ASSERT_TRUE(kv.compact(5).ok());
  EXPECT_EQ(kv.s.compact_revision(), 5);
  EXPECT_EQ(kv.s.current_revision(), 6);  // compaction does not advance the revision
  // a keeps rev 3 only; b (deleted at 5) is gone entirely; c untouched.
  EXPECT_EQ(kv.s.record_count(), 2u);
  EXPECT_EQ(kv.s.key_count(), 2u);
  EXPECT_EQ(kv.compact(5), errors::compacted());
  EXPECT_EQ(kv.compact(3), errors::compacted());
  EXPECT_EQ(kv.compact(5).code, Code::kOutOfRange);
  auto g = kv.get(Get("a", "z", 5));
  ASSERT_EQ(g.kvs_size(), 1);
  EXPECT_EQ(g.kvs(0).mod_revision(), 3);
  EXPECT_EQ(g.kvs(0).version(), 2);
  // Writes after compaction keep create_revision/version from the surviving record.
  kv.put("a", "3");
  g = kv.get("a");
  EXPECT_EQ(g.kvs(0).create_revision(), 2);
  EXPECT_EQ(g.kvs(0).version(), 3);
  // Compact at the current revision.
  ASSERT_TRUE(kv.compact(kv.s.current_revision()).ok());
  EXPECT_EQ(kv.s.record_count(), 2u);
}

// ---- HashKV -------------------------------------------------------------------------------------

TEST(MvccStoreHash, Crc32cKnownAnswer) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(MvccStoreHash, DeterministicRevisionScopedAndErrors) {
  Kv a, b;
  EXPECT_EQ(a.hash(), crc32c("key"));  // an empty store hashes just the bucket name
  for (Kv* kv : {&a, &b}) {
    kv->put("x", "1");
    kv->put("y", "2");
    kv->del("x");
  }
  EXPECT_EQ(a.hash(), b.hash());
  const uint32_t at3 = a.hash(3);
  a.put("z", "3");
  EXPECT_NE(a.hash(), b.hash());
  EXPECT_EQ(a.hash(3), at3);  // a hash at a revision ignores later writes
  EXPECT_EQ(b.hash(3), at3);

  pb::HashKVResponse resp;
  EXPECT_EQ(a.s.hash_kv(99, &resp).status, errors::future_rev());
  ASSERT_TRUE(a.compact(3).ok());
  EXPECT_EQ(a.s.hash_kv(3, &resp).status, errors::compacted());
  resp.Clear();
  ASSERT_TRUE(a.s.hash_kv(0, &resp).ok());
  EXPECT_EQ(resp.compact_revision(), 3);
  EXPECT_EQ(resp.header().revision(), 5);
  // Members that compacted and members that did not yet agree on hashes above the
  // compact revision only if they also compacted; both compact -> equal.
  b.put("z", "3");
  ASSERT_TRUE(b.compact(3).ok());
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a.hash(4), b.hash(4));
}

// Reference values taken from a real etcd 3.4.23 (Debian) with etcdctl:
//   put a 1; put a 2; put b 1; del b; txn { put c 3; put d 4 }; put a 3
//   endpoint hashkv; endpoint hashkv --rev=4; compact 4; endpoint hashkv; hashkv --rev=5
TEST(MvccStoreHash, MatchesEtcd) {
  Kv kv;
  EXPECT_EQ(kv.hash(), 1084519789u);
  kv.put("a", "1");
  kv.put("a", "2");
  kv.put("b", "1");
  kv.del("b");
  pb::TxnRequest t;
  *t.add_success() = OpPut("c", "3");
  *t.add_success() = OpPut("d", "4");
  kv.txn(t);
  kv.put("a", "3");
  ASSERT_EQ(kv.s.current_revision(), 7);
  EXPECT_EQ(kv.hash(), 1716735544u);
  EXPECT_EQ(kv.hash(4), 1662700350u);
  ASSERT_TRUE(kv.compact(4).ok());
  EXPECT_EQ(kv.hash(), 2190892638u);
  EXPECT_EQ(kv.hash(5), 1702593555u);
}

// ---- Watch support ------------------------------------------------------------------------------

TEST(MvccStoreEvents, LiveEventsMatchCatchUpHistory) {
  std::vector<std::pair<int64_t, std::vector<mvccpb::Event>>> seen;
  MvccStore::Options o;
  o.on_events = [&](int64_t rev, std::vector<mvccpb::Event>&& evs) {
    seen.emplace_back(rev, std::move(evs));
  };
  Kv kv;
  kv.s = MvccStore(o);
  kv.put("a", "1");  // 2
  kv.del("zz");      // no change: no events
  pb::TxnRequest t;
  *t.add_success() = OpPut("b", "2");
  *t.add_success() = OpDel("a");
  kv.txn(t);         // 3: PUT b, DELETE a
  kv.put("c", "3");  // 4
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].first, 2);
  ASSERT_EQ(seen[1].second.size(), 2u);
  EXPECT_EQ(seen[1].second[0].type(), mvccpb::Event::PUT);
  EXPECT_EQ(seen[1].second[0].kv().key(), "b");
  EXPECT_EQ(seen[1].second[1].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(seen[1].second[1].kv().key(), "a");
  EXPECT_EQ(seen[1].second[1].kv().mod_revision(), 3);

  std::vector<mvccpb::Event> all;
  for (auto& [rev, evs] : seen) all.insert(all.end(), evs.begin(), evs.end());
  std::vector<mvccpb::Event> history;
  ASSERT_TRUE(kv.s.events("a", std::string(1, '\0'), 2, 0, 0, &history).ok());
  ASSERT_EQ(history.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(history[i].SerializeAsString(), all[i].SerializeAsString()) << i;
  }
  ASSERT_TRUE(kv.s.events("a", "", 3, 3, 0, &history).ok());
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].type(), mvccpb::Event::DELETE);
  ASSERT_TRUE(kv.s.events("a", "z", 2, 0, 2, &history).ok());
  EXPECT_EQ(history.size(), 2u);
  EXPECT_EQ(kv.s.events("a", "", 2, 9, 0, &history).status, errors::future_rev());
  ASSERT_TRUE(kv.compact(3).ok());
  EXPECT_EQ(kv.s.events("a", "", 2, 0, 0, &history).status, errors::compacted());
  ASSERT_TRUE(kv.s.events("a", "z", 3, 0, 0, &history).ok());
  EXPECT_EQ(history.size(), 2u);  // b@3 (kept) and c@4; the tombstone of a at 3 is compacted
}

}  // namespace
}  // namespace balsa::kv
