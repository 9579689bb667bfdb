// The snapshot image readers: the KV state machine's image (MvccStore::restore, documented in
// mvcc_store.cc) and the storage snapshot file (SnapshotStore: header, metadata, checksum). The
// first input byte picks which. Refusal is an exception naming the damage; a restored store
// must write an image that restores to the same hash.
#include "fuzz.h"
#include "kv/mvcc_store.h"
#include "storage/byte_stream.h"
#include "storage/sim_fs.h"
#include "storage/snapshot_store.h"

using namespace balsa;

namespace {

void run(const std::function<void()>& f) { f(); }

std::string kv_image() {
  kv::MvccStore s;
  for (int i = 0; i < 5; ++i) {
    kv::pb::PutRequest p;
    p.set_key("key" + std::to_string(i % 3));
    p.set_value("value" + std::to_string(i));
    kv::pb::PutResponse r;
    s.put(p, &r);
  }
  StringSink out;
  s.write_image(s.image_point(), out, run);
  return out.out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in = fuzz::as_view(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    kv::MvccStore s;
    StringSource src{in};
    try {
      s.restore(src);
    } catch (const std::runtime_error&) {
      return 0;
    }
    StringSink out;
    s.write_image(s.image_point(), out, run);
    kv::MvccStore again;
    StringSource src2{out.out};
    again.restore(src2);
    FUZZ_CHECK(again.current_revision() == s.current_revision());
    FUZZ_CHECK(again.record_count() == s.record_count());
    return 0;
  }
  SimFileSystem fs;
  fs.create_dirs("/snap");
  {
    auto f = fs.open("/snap/0000000000000005-0000000000000001.snap", OpenMode::kCreate);
    f->write_at(0, in);
    f->sync();
  }
  try {
    SnapshotStore store(fs, "/snap", 2, /*read_only=*/true);
    for (const SnapshotMetadata& md : store.list()) {
      auto reader = store.open(md.index);
      char buf[4096];
      while (reader->read(buf, sizeof buf) > 0) {
      }
    }
  } catch (const StorageCorruptionError&) {
  }
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  SimFileSystem fs;
  std::string file;
  {
    SnapshotStore store(fs, "/s", 2);
    SnapshotMetadata md;
    md.index = LogIndex{5};
    md.term = Term{1};
    md.conf.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
    auto w = store.begin(md);
    w->write(kv_image());
    w->commit();
    auto f = fs.open("/s/" + store.file_name(md), OpenMode::kRead);
    file.resize(f->size());
    f->read_at(0, file.data(), file.size());
  }
  return {std::string(1, '\0') + kv_image(), std::string(1, '\1') + file};
}
