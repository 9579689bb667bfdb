// The runtime simulator: the real Node + KV state machine + WAL under faults, checked for
// linearizability; same seed, same run; a planted defect is caught.
#include "sim/node_sim.h"

#include <gtest/gtest.h>

#include <sstream>

namespace balsa::sim {
namespace {

TEST(NodeSim, SeedsPassAndExerciseTheFaults) {
  uint64_t crashes = 0, fsync_failures = 0, restored = 0, ops = 0, unknown = 0, saved = 0, abandoned = 0;
  uint64_t streamed = 0, resumes = 0, damaged = 0, refused = 0;
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    NodeSimOptions o;
    o.seed = seed;
    o.nodes = seed % 3 == 0 ? 5 : 3;
    const NodeSimResult r = run_node_simulation(o);
    ASSERT_TRUE(r.ok) << "seed " << seed << " nodes " << o.nodes << ": " << r.violation;
    EXPECT_GT(r.ops, 100u) << "seed " << seed;
    crashes += r.crashes;
    fsync_failures += r.fsync_failures;
    restored += r.snapshots_restored;
    saved += r.snapshots_saved;
    abandoned += r.snapshots_abandoned;
    ops += r.ops;
    unknown += r.indeterminate;
    streamed += r.snapshot_transfers;
    resumes += r.snapshot_resumes;
    damaged += r.snapshot_corrupted_chunks;
    refused += r.snapshot_refused;
  }
  // The runs must actually have exercised what they claim to.
  EXPECT_GT(crashes, 100u);
  EXPECT_GT(fsync_failures, 20u);
  EXPECT_GT(restored, 20u);
  EXPECT_GT(saved, 300u);
  EXPECT_GT(abandoned, 0u);  // compactions met background snapshot images
  EXPECT_GT(unknown, 50u);
  EXPECT_GT(ops, 100'000u);
  // Snapshots streamed in chunks, connections broke mid-transfer and resumed, damaged chunks
  // were refused (a run fails if a damaged chunk is accepted, an intact one refused for its
  // checksum, or one arrives out of order; a damaged chunk may also be lost on the way).
  EXPECT_GT(streamed, 20u);
  EXPECT_GT(resumes, 10u);
  EXPECT_GT(damaged, 10u);
  EXPECT_GT(refused, damaged / 2);
}

TEST(NodeSim, SameSeedReplaysByteForByte) {
  for (uint64_t seed : {3u, 41u}) {
    std::ostringstream a, b, c;
    NodeSimOptions o;
    o.seed = seed;
    o.trace = &a;
    const NodeSimResult ra = run_node_simulation(o);
    o.trace = &b;
    const NodeSimResult rb = run_node_simulation(o);
    ASSERT_TRUE(ra.ok) << ra.violation;
    EXPECT_GT(a.str().size(), 100'000u);
    EXPECT_EQ(a.str(), b.str()) << "seed " << seed;
    EXPECT_EQ(ra.trace_hash, rb.trace_hash);
    EXPECT_EQ(ra.events, rb.events);
    o.seed = seed + 1;
    o.trace = &c;
    EXPECT_NE(run_node_simulation(o).trace_hash, ra.trace_hash);
  }
}

TEST(NodeSim, PlantedStaleReadsAreCaught) {
  // Reads served from local state without a ReadIndex round: a follower or deposed leader
  // returns old values. The linearizability checker must notice within a few seeds.
  int caught = 0;
  uint64_t first = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    NodeSimOptions o;
    o.seed = seed;
    o.planted_bug = NodeBug::kStaleReads;
    const NodeSimResult r = run_node_simulation(o);
    if (!r.ok) {
      EXPECT_NE(r.violation.find("not linearizable"), std::string::npos) << r.violation;
      if (first == 0) first = seed;
      ++caught;
    }
  }
  EXPECT_GE(caught, 10) << "first caught at seed " << first;
}

TEST(NodeSim, PlantedSnapshotResumeBugIsCaught) {
  // A reconnecting sender that goes on from what it sent instead of what the receiver holds:
  // the next chunk is out of order, which the simulated network never causes.
  int caught = 0;
  uint64_t first = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    NodeSimOptions o;
    o.seed = seed;
    o.snapshot_bug = SnapshotStreamBug::kResumeFromSent;
    const NodeSimResult r = run_node_simulation(o);
    if (!r.ok) {
      EXPECT_NE(r.violation.find("chunk out of order"), std::string::npos) << r.violation;
      if (first == 0) first = seed;
      ++caught;
    }
  }
  EXPECT_GE(caught, 5) << "first caught at seed " << first;
}

}  // namespace
}  // namespace balsa::sim
