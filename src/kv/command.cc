#include "kv/command.h"

namespace balsa::kv {

Status encode_command(const kvpb::KvCommand& cmd, std::string* out, size_t max_request_bytes) {
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
  if (!cmd->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
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
  return !bytes.empty() && result->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

Status result_status(const kvpb::KvResult& result) {
  if (result.code() == 0) return Status::Ok();
  return {static_cast<Code>(result.code()), result.message()};
}

}  // namespace balsa::kv
