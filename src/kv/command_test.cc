// The KV command codec at the limits a client can reach: Txns nested as deep as etcd allows
// round-trip through the log encoding and apply; deeper ones never become a log entry; the
// wire-depth scanner counts any depth without recursion and refuses malformed bytes.
#include "kv/command.h"

#include <gtest/gtest.h>

#include <vector>

namespace balsa::kv {
namespace {

pb::TxnRequest nested_txn(int levels, const std::string& key) {
  pb::TxnRequest inner;
  auto* put = inner.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value("v");
  for (int i = 1; i < levels; ++i) {
    pb::TxnRequest outer;
    *outer.add_success()->mutable_request_txn() = std::move(inner);
    inner = std::move(outer);
  }
  return inner;
}

// 49 levels once went into the log and then failed to decode there (protobuf's default
// recursion limit of 100), so the entry was never applied.
TEST(KvCommand, NestedTxnUpToTheLimitRoundTripsThroughTheLogAndApplies) {
  for (int levels : {1, 49, 50, 100, kMaxTxnNesting}) {
    const pb::TxnRequest txn = nested_txn(levels, "k" + std::to_string(levels));
    EXPECT_EQ(txn_nesting(txn), levels);
    EXPECT_EQ(wire_txn_nesting(txn.SerializeAsString(), kMaxTxnNesting), levels);
    pb::TxnRequest parsed;
    ASSERT_TRUE(decode_txn_request(txn.SerializeAsString(), &parsed)) << levels;
    EXPECT_EQ(txn_nesting(parsed), levels);

    std::string entry;
    ASSERT_TRUE(encode_command(make_command(7, txn), &entry).ok()) << levels;
    kvpb::KvCommand cmd;
    ASSERT_TRUE(decode_command(entry, &cmd)) << levels << " levels: the log entry does not decode";
    ASSERT_TRUE(cmd.has_txn());
    EXPECT_EQ(txn_nesting(cmd.txn()), levels);

    MvccStore store;
    const kvpb::KvResult res = execute_command(store, cmd);
    ASSERT_EQ(res.code(), 0) << levels << ": " << res.message();
    kvpb::KvResult back;
    ASSERT_TRUE(decode_result(encode_result(res), &back)) << levels << " levels: the result does not decode";
    EXPECT_TRUE(back.txn().succeeded());
    pb::RangeRequest get;
    get.set_key("k" + std::to_string(levels));
    pb::RangeResponse got;
    ASSERT_TRUE(store.range(get, &got).ok());
    ASSERT_EQ(got.kvs_size(), 1) << levels;
    EXPECT_EQ(got.kvs(0).value(), "v");
  }
}

TEST(KvCommand, NestedTxnBeyondTheLimitNeverBecomesAnEntry) {
  for (int levels : {kMaxTxnNesting + 1, kMaxTxnNesting + 50, 2000}) {
    std::string entry = "untouched";
    const Status st = encode_command(make_command(1, nested_txn(levels, "k")), &entry);
    EXPECT_EQ(st.code, Code::kInvalidArgument) << levels;
    EXPECT_EQ(st.message, "etcdserver: too many operations in txn request");
    // Deeper than the decoder's limit: the scanner still tells depth from garbage.
    const std::string bytes = nested_txn(levels, "k").SerializeAsString();
    pb::TxnRequest parsed;
    if (levels > kDecodeRecursionLimit / 2) {
      EXPECT_FALSE(decode_txn_request(bytes, &parsed)) << levels;
    }
    EXPECT_GT(wire_txn_nesting(bytes, kMaxTxnNesting), kMaxTxnNesting) << levels;
  }
  // No recursion in the scanner: 200,000 levels (about 1 MB) are counted, not crashed on.
  // success { request_txn { ... } } by hand (field 2 = RequestOp holding field 4), outside in.
  auto varint = [](size_t v) {
    std::string s;
    while (v >= 0x80) {
      s.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    s.push_back(static_cast<char>(v));
    return s;
  };
  const std::string leaf = nested_txn(1, "k").SerializeAsString();
  std::vector<std::string> headers;
  size_t inner = leaf.size();
  for (int i = 1; i < 200000; ++i) {
    const std::string op_header = "\x22" + varint(inner);
    const size_t op = op_header.size() + inner;
    headers.push_back("\x12" + varint(op) + op_header);
    inner += headers.back().size();
  }
  std::string bytes;
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) bytes += *it;
  bytes += leaf;
  EXPECT_EQ(wire_txn_nesting(bytes, 1 << 30), 200000);
  EXPECT_EQ(wire_txn_nesting(bytes, kMaxTxnNesting), kMaxTxnNesting + 1);  // stops early
}

TEST(KvCommand, WireNestingRefusesMalformedBytes) {
  const std::string good = nested_txn(3, "key").SerializeAsString();
  EXPECT_EQ(wire_txn_nesting(good, 100), 3);
  // Every proper prefix is malformed (a length running past the end, or a cut field).
  for (size_t n = 1; n < good.size(); ++n) {
    const int d = wire_txn_nesting(good.substr(0, n), 100);
    pb::TxnRequest parsed;
    EXPECT_EQ(d == -1, !parsed.ParseFromString(good.substr(0, n))) << n;
  }
  EXPECT_EQ(wire_txn_nesting(std::string("\xff\xff\xff", 3), 100), -1);
  EXPECT_EQ(wire_txn_nesting(std::string("\x0c", 1), 100), -1);           // end-group tag
  EXPECT_EQ(wire_txn_nesting(std::string("\x12\x05\x22\x07xx", 6), 100), -1);  // inner > outer
  EXPECT_EQ(wire_txn_nesting("", 100), 1);  // the empty Txn
}

}  // namespace
}  // namespace balsa::kv
