// The peer transport's batch decoding: a Batch protobuf from the wire, then each message
// through the bounds-checked Raft message decoder (what GrpcTransport's receiver does before
// its stream checks). A decoded message must re-encode to an equal message.
#include "core/codec.h"
#include "fuzz.h"
#include "transport/peer.pb.h"

using namespace balsa;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  transport::Batch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  for (const std::string& bytes : batch.messages()) {
    const auto m = codec::decode<Message>(bytes);
    if (!m) continue;
    const auto back = codec::decode<Message>(codec::encode(*m));
    FUZZ_CHECK(back && *back == *m);
  }
  if (!batch.chunk().empty()) (void)codec::decode<Message>(batch.chunk());
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  Message m;
  m.type = MessageType::kApp;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{2};
  m.entries.push_back(Entry{Term{2}, LogIndex{5}, EntryType::kNormal, "x"});
  transport::Batch b;
  b.set_cluster_id(0xabc);
  b.set_from(1);
  b.add_messages(codec::encode(m));
  m.type = MessageType::kHeartbeat;
  m.entries.clear();
  b.add_messages(codec::encode(m));
  transport::Batch chunk;
  chunk.set_cluster_id(0xabc);
  chunk.set_from(1);
  chunk.set_chunk(codec::encode(m));
  chunk.set_total_size(chunk.chunk().size());
  chunk.set_last_chunk(true);
  return {b.SerializeAsString(), chunk.SerializeAsString()};
}
