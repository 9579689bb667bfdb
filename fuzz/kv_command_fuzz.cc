// The KV command decoder and apply (kv/command.h): a log entry's bytes are decoded and applied
// to a store holding a few keys. Also checks the recursion-free Txn depth scanner against the
// protobuf decoder on every input that decodes as a TxnRequest.
#include "fuzz.h"
#include "kv/command.h"

using namespace balsa;

namespace {

kv::MvccStore& store() {
  static kv::MvccStore* s = [] {
    auto* st = new kv::MvccStore;
    for (const char* k : {"a", "b", "foo", "zoo"}) {
      kv::pb::PutRequest p;
      p.set_key(k);
      p.set_value("v");
      kv::pb::PutResponse r;
      st->put(p, &r);
    }
    return st;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = fuzz::as_view(data, size);
  kv::pb::TxnRequest txn;
  if (kv::decode_txn_request(in, &txn)) {
    const int wire = kv::wire_txn_nesting(in, 1 << 30);
    FUZZ_CHECK(wire == kv::txn_nesting(txn));
  }
  kvpb::KvCommand cmd;
  if (!kv::decode_command(in, &cmd)) return 0;
  std::string entry;
  if (!kv::encode_command(cmd, &entry, 1 << 30).ok()) return 0;
  kvpb::KvCommand again;
  FUZZ_CHECK(kv::decode_command(entry, &again));  // nothing encoded is undecodable
  const kvpb::KvResult res = kv::execute_command(store(), again);
  kvpb::KvResult back;
  const std::string res_bytes = kv::encode_result(res);
  FUZZ_CHECK(res_bytes.empty() || kv::decode_result(res_bytes, &back));
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  std::vector<std::string> out;
  kv::pb::PutRequest put;
  put.set_key("foo");
  put.set_value("bar");
  put.set_prev_kv(true);
  std::string s;
  kv::encode_command(kv::make_command(1, put), &s);
  out.push_back(s);
  kv::pb::DeleteRangeRequest del;
  del.set_key("a");
  del.set_range_end("z");
  kv::encode_command(kv::make_command(2, del), &s);
  out.push_back(s);
  kv::pb::TxnRequest txn;
  auto* c = txn.add_compare();
  c->set_key("foo");
  c->set_target(kv::pb::Compare::VALUE);
  c->set_value("bar");
  *txn.add_success()->mutable_request_put() = put;
  txn.add_failure()->mutable_request_range()->set_key("foo");
  kv::pb::TxnRequest nested;
  *nested.add_success()->mutable_request_txn() = txn;
  kv::encode_command(kv::make_command(3, nested), &s);
  out.push_back(s);
  out.push_back(nested.SerializeAsString());
  kv::pb::CompactionRequest comp;
  comp.set_revision(2);
  kv::encode_command(kv::make_command(4, comp), &s);
  out.push_back(s);
  return out;
}
