#include "kv/kv_status.h"

namespace balsa::kv {

const char* to_string(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kCancelled: return "CANCELLED";
    case Code::kUnknown: return "UNKNOWN";
    case Code::kInvalidArgument: return "INVALID_ARGUMENT";
    case Code::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kAlreadyExists: return "ALREADY_EXISTS";
    case Code::kPermissionDenied: return "PERMISSION_DENIED";
    case Code::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case Code::kFailedPrecondition: return "FAILED_PRECONDITION";
    case Code::kAborted: return "ABORTED";
    case Code::kOutOfRange: return "OUT_OF_RANGE";
    case Code::kUnimplemented: return "UNIMPLEMENTED";
    case Code::kInternal: return "INTERNAL";
    case Code::kUnavailable: return "UNAVAILABLE";
    case Code::kDataLoss: return "DATA_LOSS";
    case Code::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "?";
}

namespace errors {
Status empty_key() { return {Code::kInvalidArgument, "etcdserver: key is not provided"}; }
Status key_not_found() { return {Code::kInvalidArgument, "etcdserver: key not found"}; }
Status value_provided() { return {Code::kInvalidArgument, "etcdserver: value is provided"}; }
Status lease_provided() { return {Code::kInvalidArgument, "etcdserver: lease is provided"}; }
Status too_many_ops() {
  return {Code::kInvalidArgument, "etcdserver: too many operations in txn request"};
}
Status duplicate_key() {
  return {Code::kInvalidArgument, "etcdserver: duplicate key given in txn request"};
}
Status compacted() {
  return {Code::kOutOfRange, "etcdserver: mvcc: required revision has been compacted"};
}
Status future_rev() {
  return {Code::kOutOfRange, "etcdserver: mvcc: required revision is a future revision"};
}
Status lease_not_found() { return {Code::kNotFound, "etcdserver: requested lease not found"}; }
Status lease_exists() { return {Code::kFailedPrecondition, "etcdserver: lease already exists"}; }
Status lease_ttl_too_large() { return {Code::kOutOfRange, "etcdserver: too large lease TTL"}; }
Status request_too_large() { return {Code::kInvalidArgument, "etcdserver: request is too large"}; }
Status invalid_sort_option() { return {Code::kInvalidArgument, "etcdserver: invalid sort option"}; }
Status malformed_command() { return {Code::kInternal, "balsa: malformed kv command"}; }
}  // namespace errors

}  // namespace balsa::kv
