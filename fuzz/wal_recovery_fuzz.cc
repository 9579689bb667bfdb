// WAL recovery from arbitrary files: the input is up to four files of a WAL directory, each
// "<name>\n<content>" and separated by "\n@@FILE@@\n". Read-only recovery must either succeed
// or refuse with StorageCorruptionError; recovery with repair (a torn tail cut off) must leave
// a directory that then opens cleanly to the same entries and hard state.
#include <map>

#include "fuzz.h"
#include "storage/durable_log.h"
#include "storage/sim_fs.h"
#include "storage/wal.h"

using namespace balsa;

namespace {

constexpr std::string_view kSep = "\n@@FILE@@\n";

void write_file(SimFileSystem& fs, const std::string& path, std::string_view content) {
  auto f = fs.open(path, OpenMode::kCreate);
  f->write_at(0, content);
  f->sync();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SimFileSystem fs;
  fs.create_dirs("/wal");
  size_t files = 0;
  for (std::string_view part : fuzz::split(fuzz::as_view(data, size), kSep, 4)) {
    const size_t nl = part.find('\n');
    if (nl == std::string_view::npos) continue;
    const std::string name(part.substr(0, nl));
    uint64_t seq;
    LogIndex first;
    if (!parse_wal_segment_name(name, &seq, &first) || fs.exists("/wal/" + name)) continue;
    write_file(fs, "/wal/" + name, part.substr(nl + 1));
    ++files;
  }
  if (files == 0) return 0;
  WalOptions ro;
  ro.read_only = true;
  ro.segment_bytes = 4096;
  std::optional<WalRecovery> first;
  try {
    first = Wal::open(fs, "/wal", ro).recovered;
  } catch (const StorageCorruptionError&) {
    return 0;  // refused, naming the damage: the documented outcome
  }
  WalOptions rw = ro;
  rw.read_only = false;
  WalRecovery repaired = Wal::open(fs, "/wal", rw).recovered;
  FUZZ_CHECK(repaired.entries == first->entries);
  FUZZ_CHECK(repaired.hard_state == first->hard_state);
  WalRecovery again = Wal::open(fs, "/wal", ro).recovered;
  FUZZ_CHECK(!again.torn_tail);
  FUZZ_CHECK(again.entries == first->entries);
  FUZZ_CHECK(again.hard_state == first->hard_state);
  return 0;
}

std::vector<std::string> balsa_fuzz_seeds() {
  // A real log: two closed segments and an open one, a truncation, a hard state, a snapshot marker.
  SimFileSystem fs;
  DurableLogOptions o;
  o.wal.segment_bytes = 1024;
  o.wal.preallocate = false;
  {
    auto log = DurableLog::open(fs, "/n", o);
    for (uint64_t i = 1; i <= 30; ++i) {
      Entry e{Term{1 + i / 20}, LogIndex{i}, EntryType::kNormal, "entry-" + std::to_string(i)};
      const HardState hs{e.term, NodeId{1}, LogIndex{i > 2 ? i - 2 : 0}};
      log->persist(&hs, std::vector<Entry>{e});
    }
  }
  std::string all, last;
  for (const std::string& name : fs.list("/n/wal")) {
    auto f = fs.open("/n/wal/" + name, OpenMode::kRead);
    std::string content(f->size(), '\0');
    f->read_at(0, content.data(), content.size());
    const std::string one = name + "\n" + content;
    all += (all.empty() ? "" : std::string(kSep)) + one;
    last = one;
  }
  return {all, last};
}
