// Hostile and malformed client requests against a running server, through the real gRPC client
// stack. hostile_request_test.sh starts one balsad member (and, when Debian's etcd is installed,
// one etcd 3.4.23 beside it) and runs this binary against each with
//     BALSA_TEST_ENDPOINT=127.0.0.1:port
// so every expectation here is checked against etcd's actual answer as well as balsad's.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <google/protobuf/io/coded_stream.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>
#include <cstdlib>
#include <string>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace pb = ::etcdserverpb;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::shared_ptr<grpc::Channel> channel() {
  static std::shared_ptr<grpc::Channel> ch = [] {
    const std::string ep = env("BALSA_TEST_ENDPOINT");
    if (ep.empty()) {
      ADD_FAILURE() << "BALSA_TEST_ENDPOINT is not set: run this through hostile_request_test.sh";
      std::exit(2);
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    return grpc::CreateCustomChannel(ep, grpc::InsecureChannelCredentials(), args);
  }();
  return ch;
}

void deadline(grpc::ClientContext* ctx, int seconds = 10) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// A Txn of `levels` nested TxnRequests (1 = a plain Txn); the innermost puts key=value.
pb::TxnRequest nested_txn(int levels, const std::string& key, const std::string& value) {
  pb::TxnRequest inner;
  auto* put = inner.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  for (int i = 1; i < levels; ++i) {
    pb::TxnRequest outer;
    *outer.add_success()->mutable_request_txn() = std::move(inner);
    inner = std::move(outer);
  }
  return inner;
}

// The value of `key`, or "<absent>".
std::string get(const std::string& key) {
  auto kv = pb::KV::NewStub(channel());
  grpc::ClientContext ctx;
  deadline(&ctx);
  pb::RangeRequest req;
  req.set_key(key);
  pb::RangeResponse resp;
  const grpc::Status st = kv->Range(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  return resp.kvs_size() == 0 ? "<absent>" : resp.kvs(0).value();
}

// One unary call with a raw body through the generic stub; the response bytes in `out`.
grpc::Status unary(const std::string& method, const std::string& body, std::string* out) {
  grpc::GenericStub stub(channel());
  grpc::ClientContext ctx;
  deadline(&ctx);
  grpc::Slice slice(body);
  grpc::ByteBuffer req(&slice, 1), resp;
  grpc::Status st;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    std::lock_guard<std::mutex> l(mu);
    st = std::move(s);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  if (st.ok() && out != nullptr) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(resp.Dump(&slices).ok());
    out->clear();
    for (const auto& sl : slices) out->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  return st;
}

// Txn through the generic stub: the generated client stub parses responses with protobuf's
// default recursion limit (100), less than a 128-level TxnResponse needs.
grpc::Status txn(const pb::TxnRequest& req, pb::TxnResponse* resp) {
  std::string out;
  grpc::Status st = unary("/etcdserverpb.KV/Txn", req.SerializeAsString(), &out);
  if (!st.ok()) return st;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(out.data()),
                                            static_cast<int>(out.size()));
  in.SetRecursionLimit(1000);
  EXPECT_TRUE(resp->ParseFromCodedStream(&in)) << "TxnResponse of " << out.size() << " bytes";
  return st;
}

// etcd applies a nested Txn as long as every level fits what its parent left of --max-txn-ops
// (128): one op per level allows 128 levels. balsad once wrote 49 levels to the log and then
// could not decode the entry (protobuf's recursion limit), and refused 50+ with UNIMPLEMENTED.
TEST(HostileRequest, NestedTxnUpToTheOpLimitIsApplied) {
  const std::string run = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int levels : {1, 2, 48, 49, 50, 51, 64, 100, 127, 128}) {
    const std::string key = "nest/" + run + "/" + std::to_string(levels);
    pb::TxnResponse resp;
    const grpc::Status st = txn(nested_txn(levels, key, "v" + std::to_string(levels)), &resp);
    ASSERT_TRUE(st.ok()) << levels << " levels: " << st.error_code() << " " << st.error_message();
    EXPECT_TRUE(resp.succeeded());
    // The response nests as deep as the request.
    const pb::TxnResponse* r = &resp;
    int depth = 1;
    while (r->responses_size() == 1 && r->responses(0).has_response_txn()) {
      r = &r->responses(0).response_txn();
      ++depth;
    }
    EXPECT_EQ(depth, levels);
    ASSERT_EQ(r->responses_size(), 1);
    EXPECT_TRUE(r->responses(0).has_response_put());
    EXPECT_EQ(get(key), "v" + std::to_string(levels)) << levels << " levels";
  }
}

TEST(HostileRequest, NestedTxnBeyondTheOpLimitIsRefusedAndNotApplied) {
  const std::string run = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int levels : {129, 130, 200, 1000, 20000}) {
    const std::string key = "deep/" + run + "/" + std::to_string(levels);
    pb::TxnResponse resp;
    const grpc::Status st = txn(nested_txn(levels, key, "x"), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << levels << ": " << st.error_message();
    EXPECT_EQ(st.error_message(), "etcdserver: too many operations in txn request") << levels;
    EXPECT_EQ(get(key), "<absent>");
  }
  // The server still takes writes (nothing undecodable sits in its log).
  pb::TxnResponse resp;
  ASSERT_TRUE(txn(nested_txn(3, "deep/" + run + "/after", "ok"), &resp).ok());
  EXPECT_EQ(get("deep/" + run + "/after"), "ok");
}

// A body that is not the method's protobuf message: etcd (grpc-go) answers INTERNAL
// "grpc: error unmarshalling request: ..."; balsad once answered UNIMPLEMENTED with no message.
TEST(HostileRequest, BodyThatIsNotProtobufIsInternalUnmarshallingError) {
  // A field 1 (key) claiming 100 bytes with 3 present; a bare 0xff varint; an end-group tag.
  const std::string bodies[] = {std::string("\x0a\x64" "abc", 5), std::string("\xff\xff\xff", 3),
                                std::string("\x0c", 1)};
  for (const char* method : {"/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/Txn",
                             "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.Maintenance/Status",
                             "/etcdserverpb.Cluster/MemberList"}) {
    for (const std::string& body : bodies) {
      const grpc::Status st = unary(method, body, nullptr);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL) << method << ": " << st.error_message();
      EXPECT_EQ(st.error_message().rfind("grpc: error unmarshalling request", 0), 0u)
          << method << ": \"" << st.error_message() << "\"";
    }
  }
}

// An unknown sort target or order is refused (INVALID_ARGUMENT "etcdserver: invalid sort
// option", as etcd 3.5 does). etcd 3.4.23 has no such check (see hostile_request_test.sh: the
// script does not run this test against it).
TEST(HostileRequest, UnknownSortOptionIsRefused) {
  auto kv = pb::KV::NewStub(channel());
  for (int target : {5, 99}) {
    for (int order : {0, 1, 2}) {
      grpc::ClientContext ctx;
      deadline(&ctx);
      pb::RangeRequest req;
      req.set_key("a");
      req.set_range_end("z");
      req.set_sort_target(static_cast<pb::RangeRequest::SortTarget>(target));
      req.set_sort_order(static_cast<pb::RangeRequest::SortOrder>(order));
      pb::RangeResponse resp;
      const grpc::Status st = kv->Range(&ctx, req, &resp);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << target << "/" << order;
      EXPECT_EQ(st.error_message(), "etcdserver: invalid sort option");
    }
  }
  for (int order : {3, 77}) {
    grpc::ClientContext ctx;
    deadline(&ctx);
    pb::RangeRequest req;
    req.set_key("a");
    req.set_sort_order(static_cast<pb::RangeRequest::SortOrder>(order));
    pb::RangeResponse resp;
    const grpc::Status st = kv->Range(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << order;
    EXPECT_EQ(st.error_message(), "etcdserver: invalid sort option");
  }
}

// MoveLeader to an id that is not a member: etcd answers FAILED_PRECONDITION
// "etcdserver: bad leader transferee" (balsad once answered NOT_FOUND).
TEST(HostileRequest, MoveLeaderToANonMemberIsFailedPrecondition) {
  auto m = pb::Maintenance::NewStub(channel());
  grpc::ClientContext ctx;
  deadline(&ctx);
  pb::MoveLeaderRequest req;
  req.set_targetid(0x1234567);
  pb::MoveLeaderResponse resp;
  const grpc::Status st = m->MoveLeader(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_EQ(st.error_message(), "etcdserver: bad leader transferee");
}

}  // namespace
