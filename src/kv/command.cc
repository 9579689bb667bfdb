#include "kv/command.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <climits>
#include <vector>

namespace balsa::kv {

namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

template <typename Message>
bool parse_deep(std::string_view bytes, Message* m) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  in.SetRecursionLimit(kDecodeRecursionLimit);
  return m->ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
}

int op_nesting(const pb::RequestOp& op) {
  return op.request_case() == pb::RequestOp::kRequestTxn ? txn_nesting(op.request_txn()) : 0;
}

}  // namespace

int txn_nesting(const pb::TxnRequest& txn) {
  int deepest = 0;
  for (const auto& op : txn.success()) deepest = std::max(deepest, op_nesting(op));
  for (const auto& op : txn.failure()) deepest = std::max(deepest, op_nesting(op));
  return 1 + deepest;
}

int wire_txn_nesting(std::string_view bytes, int stop_above) {
  // TxnRequest: success = 2, failure = 3 (RequestOp); RequestOp: request_txn = 4 (TxnRequest).
  // Every other field is skipped. The stack holds the enclosing messages' limits.
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  std::vector<CodedInputStream::Limit> enclosing;
  bool in_txn = true;  // the current message is a TxnRequest (else a RequestOp)
  int depth = 1, deepest = 1;
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      if (enclosing.empty()) return in.ConsumedEntireMessage() ? deepest : -1;
      if (in.BytesUntilLimit() != 0) return -1;  // a bad tag inside a nested message
      in.PopLimit(enclosing.back());
      enclosing.pop_back();
      if (in_txn) --depth;
      in_txn = !in_txn;
      continue;
    }
    const uint32_t field = WireFormatLite::GetTagFieldNumber(tag);
    const bool nested = WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
                        (in_txn ? (field == 2 || field == 3) : field == 4);
    if (!nested) {
      if (!WireFormatLite::SkipField(&in, tag)) return -1;
      continue;
    }
    uint32_t len;
    if (!in.ReadVarint32(&len) || len > static_cast<uint32_t>(INT32_MAX)) return -1;
    // Inside a nested message the length must fit in it (PushLimit would silently clamp it);
    // at the top a length past the end is caught when the data runs out inside the limit.
    if (const int room = in.BytesUntilLimit(); room >= 0 && len > static_cast<uint32_t>(room)) return -1;
    enclosing.push_back(in.PushLimit(static_cast<int>(len)));
    in_txn = !in_txn;
    if (in_txn) {
      deepest = std::max(deepest, ++depth);
      if (deepest > stop_above) return deepest;
    }
  }
}

bool decode_txn_request(std::string_view bytes, pb::TxnRequest* txn) { return parse_deep(bytes, txn); }

Status encode_command(const kvpb::KvCommand& cmd, std::string* out, size_t max_request_bytes) {
  if (cmd.has_txn() && txn_nesting(cmd.txn()) > kMaxTxnNesting) return errors::too_many_ops();
  if (cmd.ByteSizeLong() > max_request_bytes) return errors::request_too_large();
  out->clear();
  // Field order is fixed by the schema; nothing in these messages is a map, so the encoding
  // is deterministic without SetSerializationDeterministic.
  if (!cmd.SerializeToString(out)) return errors::malformed_command();
  return Status::Ok();
}

kvpb::KvCommand make_command(uint64_t request_id, const pb::PutRequest& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_put() = req;
  return c;
}
kvpb::KvCommand make_command(uint64_t request_id, const pb::DeleteRangeRequest& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_delete_range() = req;
  return c;
}
kvpb::KvCommand make_command(uint64_t request_id, const pb::TxnRequest& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_txn() = req;
  return c;
}
kvpb::KvCommand make_command(uint64_t request_id, const pb::CompactionRequest& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_compaction() = req;
  return c;
}

kvpb::KvCommand make_command(uint64_t request_id, const kvpb::MemberAttributes& attrs) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_member_attributes() = attrs;
  return c;
}

kvpb::KvCommand make_command(uint64_t request_id, const pb::LeaseGrantRequest& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_lease_grant() = req;
  return c;
}

kvpb::KvCommand make_command(uint64_t request_id, const pb::LeaseRevokeRequest& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_lease_revoke() = req;
  return c;
}

kvpb::KvCommand make_command(uint64_t request_id, const kvpb::LeaseRenew& req) {
  kvpb::KvCommand c;
  c.set_request_id(request_id);
  *c.mutable_lease_renew() = req;
  return c;
}

bool decode_command(std::string_view bytes, kvpb::KvCommand* cmd) {
  if (!parse_deep(bytes, cmd)) return false;
  return cmd->request_case() != kvpb::KvCommand::REQUEST_NOT_SET;
}

kvpb::KvResult execute_command(MvccStore& store, const kvpb::KvCommand& cmd) {
  kvpb::KvResult out;
  out.set_request_id(cmd.request_id());
  Result r;
  switch (cmd.request_case()) {
    case kvpb::KvCommand::kPut: r = store.put(cmd.put(), out.mutable_put()); break;
    case kvpb::KvCommand::kDeleteRange:
      r = store.delete_range(cmd.delete_range(), out.mutable_delete_range());
      break;
    case kvpb::KvCommand::kTxn: r = store.txn(cmd.txn(), out.mutable_txn()); break;
    case kvpb::KvCommand::kCompaction:
      r = store.compact(cmd.compaction(), out.mutable_compaction());
      break;
    case kvpb::KvCommand::kMemberAttributes: r.revision = store.current_revision(); break;
    case kvpb::KvCommand::kLeaseGrant:
      r = store.lease_grant(cmd.lease_grant(), out.mutable_lease_grant());
      break;
    case kvpb::KvCommand::kLeaseRevoke:
      r = store.lease_revoke(cmd.lease_revoke(), out.mutable_lease_revoke());
      break;
    case kvpb::KvCommand::kLeaseRenew:
      r = store.lease_renew(cmd.lease_renew().id(), out.mutable_lease_renew());
      break;
    case kvpb::KvCommand::REQUEST_NOT_SET: r.status = errors::malformed_command(); break;
  }
  if (!r.ok()) {
    out.clear_response();
    out.set_code(static_cast<int32_t>(r.status.code));
    out.set_message(r.status.message);
    return out;
  }
  out.set_revision(r.revision);
  return out;
}

std::string encode_result(const kvpb::KvResult& result) { return result.SerializeAsString(); }

bool decode_result(std::string_view bytes, kvpb::KvResult* result) {
  return !bytes.empty() && parse_deep(bytes, result);
}

Status result_status(const kvpb::KvResult& result) {
  if (result.code() == 0) return Status::Ok();
  return {static_cast<Code>(result.code()), result.message()};
}

}  // namespace balsa::kv
