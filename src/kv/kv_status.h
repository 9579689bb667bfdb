// The outcome of a KV operation: a gRPC-compatible status code and etcd's exact error text.
// The KV layer does not depend on gRPC; `Code` is numerically identical to grpc::StatusCode so
// the server maps it with a static_cast: grpc::Status(grpc::StatusCode(int(s.code)), s.message).
#pragma once

#include <string>

namespace balsa::kv {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

const char* to_string(Code c);

struct Status {
  Code code = Code::kOk;
  std::string message;

  static Status Ok() { return {}; }
  bool ok() const { return code == Code::kOk; }
  bool operator==(const Status&) const = default;
};

// etcd's errors as its gRPC layer reports them (etcdserver/api/v3rpc/rpctypes/error.go, v3.4).
namespace errors {
Status empty_key();         // InvalidArgument "etcdserver: key is not provided"
Status key_not_found();     // InvalidArgument "etcdserver: key not found"
Status value_provided();    // InvalidArgument "etcdserver: value is provided"
Status lease_provided();    // InvalidArgument "etcdserver: lease is provided"
Status too_many_ops();      // InvalidArgument "etcdserver: too many operations in txn request"
Status duplicate_key();     // InvalidArgument "etcdserver: duplicate key given in txn request"
Status compacted();         // OutOfRange "etcdserver: mvcc: required revision has been compacted"
Status future_rev();        // OutOfRange "etcdserver: mvcc: required revision is a future revision"
Status lease_not_found();   // NotFound "etcdserver: requested lease not found"
Status lease_exists();      // FailedPrecondition "etcdserver: lease already exists"
Status lease_ttl_too_large(); // OutOfRange "etcdserver: too large lease TTL"
Status request_too_large(); // InvalidArgument "etcdserver: request is too large"
// Not an etcd error: a log entry that does not decode as a KV command (a proposer bug).
Status invalid_sort_option(); // InvalidArgument "etcdserver: invalid sort option"
Status malformed_command(); // Internal "balsa: malformed kv command"
}  // namespace errors

}  // namespace balsa::kv
