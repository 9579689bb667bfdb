// balsa-sim: runs the deterministic cluster simulator over many seeds, or one seed in detail.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <map>

#include "sim/simulator.h"

using balsa::PlantedBug;
using balsa::sim::SimOptions;

int main(int argc, char** argv) {
  CLI::App app{"balsa-sim: seeded fault-injection simulator for the Balsa Raft core"};
  uint64_t seeds = 0, first_seed = 1, seed = 0;
  int nodes = 5;
  bool trace = false, timeline = false;
  std::string bug = "none";
  SimOptions base;
  app.add_option("--seeds", seeds, "Run this many seeds (first-seed, first-seed+1, ...)");
  app.add_option("--first-seed", first_seed, "First seed of a --seeds run")->capture_default_str();
  app.add_option("--seed", seed, "Run one seed (with --trace or --timeline to see it)");
  app.add_option("--nodes", nodes, "Cluster size (3, 5 or 7)")->check(CLI::IsMember({3, 5, 7}))->capture_default_str();
  app.add_flag("--trace", trace, "Print every event of the run (with --seed)");
  app.add_flag("--timeline", timeline, "Print leader changes, faults and commit progress (with --seed)");
  app.add_option("--plant-bug", bug,
                 "Negative control: none, commit-previous-term (Figure 8), vote-without-log-check, "
                 "conf-on-commit, lease-without-quorum")
      ->check(CLI::IsMember({"none", "commit-previous-term", "vote-without-log-check", "conf-on-commit",
                             "lease-without-quorum"}))
      ->capture_default_str();
  bool no_membership = false;
  app.add_flag("--no-membership", no_membership, "Leave membership changes out of the fault mix");
  app.add_option("--safety-ticks", base.safety_ticks, "Ticks (10 ms) of faults per run")->capture_default_str();
  app.add_option("--liveness-ticks", base.liveness_ticks, "Ticks allowed for recovery after healing")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  base.nodes = nodes;
  base.membership = !no_membership;
  base.planted_bug = bug == "commit-previous-term"   ? PlantedBug::kCommitPreviousTerm
                     : bug == "vote-without-log-check" ? PlantedBug::kVoteWithoutLogCheck
                     : bug == "conf-on-commit"         ? PlantedBug::kConfOnCommit
                     : bug == "lease-without-quorum"   ? PlantedBug::kLeaseWithoutQuorum
                                                       : PlantedBug::kNone;
  const std::string bug_flag = bug == "none" ? "" : " --plant-bug " + bug;

  if (seeds == 0) {
    if (seed == 0) {
      std::cerr << "give --seeds N or --seed S (see --help)\n";
      return 2;
    }
    SimOptions o = base;
    o.seed = seed;
    if (trace) o.trace = &std::cout;
    if (timeline) o.timeline = &std::cout;
    auto r = balsa::sim::run_simulation(o);
    std::cout << fmt::format("seed {}: {} events, {} messages, {} elections, {} crashes, {} committed, {} acked, "
                             "{} conf changes, {} lease reads, trace hash {:016x}\n",
                             seed, r.events, r.messages, r.elections, r.crashes, r.committed, r.acked,
                             r.conf_changes, r.lease_reads, r.trace_hash);
    if (!r.ok) {
      std::cout << "VIOLATION: " << r.violation << "\n";
      return 1;
    }
    std::cout << "1 seeds, 0 violations\n";
    return 0;
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t violations = 0, committed = 0, conf_changes = 0, lease_reads = 0;
  for (uint64_t s = first_seed; s < first_seed + seeds; ++s) {
    SimOptions o = base;
    o.seed = s;
    auto r = balsa::sim::run_simulation(o);
    committed += r.committed;
    conf_changes += r.conf_changes;
    lease_reads += r.lease_reads;
    if (!r.ok) {
      ++violations;
      std::cout << fmt::format("seed {} VIOLATION: {}\n  replay: balsa-sim --seed {} --nodes {}{} --trace\n", s,
                               r.violation, s, nodes, bug_flag);
      break;  // the first failing seed is what matters; replay it
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << fmt::format("({:.1f} s, {} entries committed, {} configuration changes, {} lease reads in all)\n", secs,
                           committed, conf_changes, lease_reads);
  std::cout << fmt::format("{} seeds, {} violations\n", seeds, violations);
  return violations == 0 ? 0 : 1;
}
