// The simulator's watchers: they run through crashes, restarts, snapshot restores and
// compactions with every stream checked, and the checker catches a planted watch bug.
#include <gtest/gtest.h>

#include "sim/node_sim.h"

namespace balsa::sim {
namespace {

TEST(NodeSimWatch, WatchersAreCheckedThroughFaults) {
  uint64_t events = 0, resumes = 0, compacted = 0, restored = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    NodeSimOptions o;
    o.seed = seed;
    const NodeSimResult r = run_node_simulation(o);
    ASSERT_TRUE(r.ok) << "seed " << seed << ": " << r.violation;
    events += r.watch_events;
    resumes += r.watch_resumes;
    compacted += r.watch_compacted;
    restored += r.snapshots_restored;
  }
  EXPECT_GT(events, 5000u);
  EXPECT_GT(resumes, 100u);   // catch-ups from history
  EXPECT_GT(compacted, 5u);   // resumes that met a compaction
  EXPECT_GT(restored, 0u);    // members whose store jumped under their hub
}

TEST(NodeSimWatch, PlantedSkipOfTheFirstResumedEventIsCaught) {
  int caught = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    NodeSimOptions o;
    o.seed = seed;
    o.plant_watch_skip = true;
    const NodeSimResult r = run_node_simulation(o);
    if (!r.ok) {
      ++caught;
      EXPECT_NE(r.violation.find("watcher"), std::string::npos) << r.violation;
    }
  }
  EXPECT_EQ(caught, 10);
}

}  // namespace
}  // namespace balsa::sim
