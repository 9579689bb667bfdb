// How a balsad write becomes a Raft log entry and how its outcome comes back.
//
//   gRPC handler                         log entry.data               proposer's future
//   PutRequest ... -> KvCommand --encode_command--> bytes --apply--> KvResult bytes
//                                                              --decode_result--> KvResult
//
// KvCommand / KvResult are protobuf messages (src/kv/kvcmd.proto, package balsa.kvpb) that
// wrap etcd's own request and response messages, so nothing is re-encoded by hand.
// Range, HashKV and Status are reads: they do not go through the log (ReadIndex instead).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "balsa/kv/kvcmd.pb.h"
#include "kv/kv_status.h"
#include "kv/mvcc_store.h"

namespace balsa::kv {

// NESTED TXNS. etcd lets each nested Txn use what its parent left of --max-txn-ops (128), so
// with at least one op per level no valid Txn nests deeper than kMaxTxnNesting levels (the
// outer Txn counts as 1). Protobuf refuses by default to decode messages nested more than 100
// deep, and each Txn level is two (TxnRequest -> RequestOp), so every decoder of a Txn here
// (the gRPC request, the log entry, the result) raises the limit to kDecodeRecursionLimit:
// the deepest valid Txn, plus the command/result wrapper and the leaf request/response, plus a
// margin. encode_command refuses a deeper Txn, so no entry that cannot be decoded reaches the
// log.
inline constexpr int kMaxTxnNesting = kDefaultMaxTxnOps;
inline constexpr int kDecodeRecursionLimit = 2 * kMaxTxnNesting + 16;

// Levels of Txn in `txn` (1 for a Txn with no nested Txn).
int txn_nesting(const pb::TxnRequest& txn);

// Levels of Txn in the TxnRequest encoded in `bytes`, counted without recursion (any depth is
// safe) and stopping once above `stop_above`; -1 if `bytes` is not valid protobuf wire format.
// Tells a request refused for depth from one that is garbage.
int wire_txn_nesting(std::string_view bytes, int stop_above);

// Decodes a TxnRequest with the raised recursion limit. False if it does not decode.
bool decode_txn_request(std::string_view bytes, pb::TxnRequest* txn);

// Encodes `cmd` into `out`. Fails with etcd's "etcdserver: request is too large" when the
// encoding exceeds max_request_bytes (etcd --max-request-bytes, default 1.5 MiB), and with
// "etcdserver: too many operations in txn request" when a Txn nests deeper than
// kMaxTxnNesting; then `out` is unspecified and nothing should be proposed.
Status encode_command(const kvpb::KvCommand& cmd, std::string* out,
                      size_t max_request_bytes = kDefaultMaxRequestBytes);

// Convenience builders for the write commands.
kvpb::KvCommand make_command(uint64_t request_id, const pb::PutRequest& req);
kvpb::KvCommand make_command(uint64_t request_id, const pb::DeleteRangeRequest& req);
kvpb::KvCommand make_command(uint64_t request_id, const pb::TxnRequest& req);
kvpb::KvCommand make_command(uint64_t request_id, const pb::CompactionRequest& req);
kvpb::KvCommand make_command(uint64_t request_id, const kvpb::MemberAttributes& attrs);
kvpb::KvCommand make_command(uint64_t request_id, const pb::LeaseGrantRequest& req);
kvpb::KvCommand make_command(uint64_t request_id, const pb::LeaseRevokeRequest& req);
kvpb::KvCommand make_command(uint64_t request_id, const kvpb::LeaseRenew& req);

// False if `bytes` is not a KvCommand with a request set.
bool decode_command(std::string_view bytes, kvpb::KvCommand* cmd);

// Applies one decoded command to `store` and describes the outcome. Deterministic.
// MemberAttributes leaves the store alone (KvStateMachine keeps them): OK at the current revision.
kvpb::KvResult execute_command(MvccStore& store, const kvpb::KvCommand& cmd);

std::string encode_result(const kvpb::KvResult& result);
// False if `bytes` does not decode (e.g. the empty result of a no-op or config entry).
bool decode_result(std::string_view bytes, kvpb::KvResult* result);

// The status a result carries (what the gRPC handler returns when it is not OK).
Status result_status(const kvpb::KvResult& result);

}  // namespace balsa::kv
