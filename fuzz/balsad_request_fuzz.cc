// balsad's request validation (MvccStore::validate, the checks etcd's gRPC layer makes) on
// arbitrary Range/Put/DeleteRange/Txn request bytes, then the apply of what validation passed.
// A validated request must apply without crashing and answer OK or a documented etcd error.
#include "fuzz.h"
#include "kv/command.h"

using namespace balsa;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static kv::MvccStore* store = new kv::MvccStore;
  const std::string_view in = fuzz::as_view(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      kv::pb::RangeRequest r;
      if (!r.ParseFromArray(in.data(), static_cast<int>(in.size()))) return 0;
      if (!kv::MvccStore::validate(r).ok()) return 0;
      kv::pb::RangeResponse resp;
      (void)store->range(r, &resp);
      return 0;
    }
    case 1: {
      kv::pb::PutRequest r;
      if (!r.ParseFromArray(in.data(), static_cast<int>(in.size()))) return 0;
      if (!kv::MvccStore::validate(r).ok()) return 0;
      r.set_lease(0);  // leases are not granted here
      kv::pb::PutResponse resp;
      (void)store->put(r, &resp);
      return 0;
    }
    case 2: {
      kv::pb::DeleteRangeRequest r;
      if (!r.ParseFromArray(in.data(), static_cast<int>(in.size()))) return 0;
      if (!kv::MvccStore::validate(r).ok()) return 0;
      kv::pb::DeleteRangeResponse resp;
      (void)store->delete_range(r, &resp);
      return 0;
    }
    case 3: {
      kv::pb::TxnRequest r;
      if (!kv::decode_txn_request(in, &r)) return 0;
      if (!kv::MvccStore::validate(r, kv::kDefaultMaxTxnOps).ok()) return 0;
      std::string entry;
      FUZZ_CHECK(kv::encode_command(kv::make_command(1, r), &entry, 1 << 30).ok() ||
                 kv::txn_nesting(r) > kv::kMaxTxnNesting);
      kv::pb::TxnResponse resp;
      (void)store->txn(r, &resp);
      return 0;
    }
  }
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  kv::pb::RangeRequest range;
  range.set_key("a");
  range.set_range_end("z");
  range.set_sort_target(kv::pb::RangeRequest::MOD);
  range.set_sort_order(kv::pb::RangeRequest::DESCEND);
  range.set_limit(3);
  kv::pb::PutRequest put;
  put.set_key("k");
  put.set_value("v");
  kv::pb::DeleteRangeRequest del;
  del.set_key("k");
  del.set_prev_kv(true);
  kv::pb::TxnRequest txn;
  auto* c = txn.add_compare();
  c->set_key("k");
  c->set_target(kv::pb::Compare::VERSION);
  c->set_result(kv::pb::Compare::GREATER);
  c->set_version(0);
  *txn.add_success()->mutable_request_put() = put;
  *txn.add_failure()->mutable_request_range() = range;
  return {std::string(1, '\0') + range.SerializeAsString(), std::string(1, '\1') + put.SerializeAsString(),
          std::string(1, '\2') + del.SerializeAsString(), std::string(1, '\3') + txn.SerializeAsString()};
}
