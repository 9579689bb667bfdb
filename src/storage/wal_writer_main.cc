// balsa_wal_writer DIR SEED: appends batches of entries to the WAL in DIR with fsync, forever,
// and after each save() returns writes "<last index>\n" to stdout (unbuffered). The SIGKILL
// test kills it at random points and checks that every index it printed survives. Entry i has
// term 1 and data writer_payload(i) (test_util.h), so the test can check contents, not just presence.
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "storage/test_util.h"
#include "storage/wal.h"


int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DIR SEED [SEGMENT_BYTES]\n", argv[0]);
    return 2;
  }
  balsa::PosixFileSystem fs;
  balsa::WalOptions opts;
  opts.segment_bytes = argc > 3 ? std::stoull(argv[3]) : (256u << 10);
  auto opened = balsa::Wal::open(fs, argv[1], opts);
  balsa::Wal& wal = *opened.wal;
  std::mt19937_64 rng(std::stoull(argv[2]));
  uint64_t next = wal.last_index().value + 1;
  for (;;) {
    std::vector<balsa::Entry> batch;
    const int n = 1 + static_cast<int>(rng() % 16);
    for (int k = 0; k < n; ++k, ++next)
      batch.push_back(balsa::Entry{balsa::Term{1}, balsa::LogIndex{next},
                                   balsa::EntryType::kNormal, balsa::testing::writer_payload(next)});
    balsa::HardState hs{balsa::Term{1}, balsa::NodeId{1}, balsa::LogIndex{next - 1}};
    wal.save(&hs, batch, /*sync=*/true);
    const std::string line = fmt::format("{}\n", next - 1);
    if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
  }
}
