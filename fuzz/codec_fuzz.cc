// The core's wire and WAL codec (core/codec.h): every decoder on arbitrary bytes. A value that
// decodes must re-encode to bytes that decode to the same value (the WAL and the transport rely
// on encode/decode being inverse).
#include "core/codec.h"
#include "fuzz.h"

namespace {

using namespace balsa;

template <typename T>
void check(std::string_view in) {
  const std::optional<T> v = codec::decode<T>(in);
  if (!v) return;
  const std::string again = codec::encode(*v);
  const std::optional<T> back = codec::decode<T>(again);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(*back == *v);
  FUZZ_CHECK(codec::encode(*back) == again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in = balsa::fuzz::as_view(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0: check<Message>(in); break;
    case 1: check<Entry>(in); break;
    case 2: check<HardState>(in); break;
    case 3: check<ConfState>(in); break;
    case 4: check<ConfChange>(in); break;
    case 5: check<SnapshotMetadata>(in); break;
  }
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  using namespace balsa;
  Message m;
  m.type = MessageType::kApp;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{3};
  m.index = LogIndex{10};
  m.log_term = Term{2};
  m.commit = LogIndex{9};
  m.entries.push_back(Entry{Term{3}, LogIndex{11}, EntryType::kNormal, "hello"});
  m.entries.push_back(Entry{Term{3}, LogIndex{12}, EntryType::kConfChange, std::string("\0\1\2", 3)});
  m.context = "ctx";
  Message snap;
  snap.type = MessageType::kSnap;
  snap.from = NodeId{1};
  snap.to = NodeId{3};
  snap.snapshot.metadata.index = LogIndex{100};
  snap.snapshot.metadata.term = Term{2};
  snap.snapshot.metadata.conf.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  snap.snapshot.data = "image";
  HardState hs{Term{5}, NodeId{2}, LogIndex{40}};
  ConfState cs;
  cs.voters = {NodeId{1}, NodeId{2}};
  cs.learners = {NodeId{4}};
  SnapshotMetadata md;
  md.index = LogIndex{7};
  md.term = Term{1};
  md.conf = cs;
  return {std::string(1, '\0') + codec::encode(m), std::string(1, '\0') + codec::encode(snap),
          std::string(1, '\1') + codec::encode(m.entries[0]), std::string(1, '\2') + codec::encode(hs),
          std::string(1, '\3') + codec::encode(cs), std::string(1, '\5') + codec::encode(md)};
}
