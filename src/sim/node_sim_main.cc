// balsa-sim-node: the runtime simulator (real Node + KV state machine + WAL on simulated
// time, disk and network) over many seeds, or one seed in detail.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "sim/node_sim.h"

using balsa::NodeBug;
using balsa::sim::NodeSimOptions;

int main(int argc, char** argv) {
  CLI::App app{"balsa-sim-node: seeded fault-injection simulator for the Balsa Node runtime and KV state machine, "
               "with a linearizability check of every client history"};
  uint64_t seeds = 0, first_seed = 1, seed = 0;
  bool trace = false, timeline = false;
  std::string bug = "none";
  NodeSimOptions base;
  app.add_option("--seeds", seeds, "Run this many seeds (first-seed, first-seed+1, ...)");
  app.add_option("--first-seed", first_seed, "First seed of a --seeds run")->capture_default_str();
  app.add_option("--seed", seed, "Run one seed (with --trace or --timeline to see it)");
  app.add_option("--nodes", base.nodes, "Cluster size (3, 5 or 7)")
      ->check(CLI::IsMember({3, 5, 7}))
      ->capture_default_str();
  app.add_option("--clients", base.clients, "Concurrent clients")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--keys", base.keys, "Distinct keys the clients use")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--safety-ms", base.safety_ms, "Simulated milliseconds of faults per run")->capture_default_str();
  app.add_option("--liveness-ms", base.liveness_ms, "Simulated milliseconds allowed for recovery after healing")
      ->capture_default_str();
  app.add_flag("--trace", trace, "Print every event of the run (with --seed)");
  app.add_flag("--timeline", timeline, "Print faults, crashes and leader changes (with --seed)");
  app.add_option("--watchers", base.watchers, "Watch clients checked against the committed history")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--plant-bug", bug,
                 "Negative control: none, stale-reads (reads skip the ReadIndex round), snapshot-resume (a "
                 "reconnecting snapshot sender goes on from what it sent, not from what was acknowledged), "
                 "watch-skip-resumed (a watch resumed from a past revision skips its first event)")
      ->check(CLI::IsMember({"none", "stale-reads", "snapshot-resume", "watch-skip-resumed"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  base.planted_bug = bug == "stale-reads" ? NodeBug::kStaleReads : NodeBug::kNone;
  base.snapshot_bug = bug == "snapshot-resume" ? balsa::SnapshotStreamBug::kResumeFromSent : balsa::SnapshotStreamBug::kNone;
  base.plant_watch_skip = bug == "watch-skip-resumed";
  const std::string flags = fmt::format(" --nodes {} --clients {} --keys {} --watchers {} --safety-ms {} --liveness-ms {}{}",
                                        base.nodes, base.clients, base.keys, base.watchers, base.safety_ms, base.liveness_ms,
                                        bug == "none" ? "" : " --plant-bug " + bug);

  auto summary = [](uint64_t s, const balsa::sim::NodeSimResult& r) {
    return fmt::format(
        "seed {}: {} events, {} messages, {} crashes, {} fsync failures, {} snapshots saved ({} abandoned), {} restored, {} streamed ({} connections, {} resumed, {} chunks damaged, {} refused), {} ops checked "
        "({} outcome unknown, {} refused), {} search steps, {} watch events checked ({} resumes, {} compacted), trace hash {:016x}",
        s, r.events, r.messages, r.crashes, r.fsync_failures, r.snapshots_saved, r.snapshots_abandoned,
        r.snapshots_restored, r.snapshot_transfers, r.snapshot_connections, r.snapshot_resumes,
        r.snapshot_corrupted_chunks, r.snapshot_refused, r.ops, r.indeterminate, r.failed,
        r.check_steps, r.watch_events, r.watch_resumes, r.watch_compacted, r.trace_hash);
  };
  if (seeds == 0) {
    if (seed == 0) {
      std::cerr << "give --seeds N or --seed S (see --help)\n";
      return 2;
    }
    NodeSimOptions o = base;
    o.seed = seed;
    if (trace) o.trace = &std::cout;
    if (timeline) o.timeline = &std::cout;
    const auto r = balsa::sim::run_node_simulation(o);
    std::cout << summary(seed, r) << "\n";
    if (!r.ok) {
      std::cout << "VIOLATION: " << r.violation << "\n";
      return 1;
    }
    std::cout << "1 seeds, 0 violations\n";
    return 0;
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t violations = 0, ops = 0, unknown = 0, crashes = 0, restored = 0, saved = 0, abandoned = 0, run = 0;
  for (uint64_t s = first_seed; s < first_seed + seeds; ++s) {
    NodeSimOptions o = base;
    o.seed = s;
    const auto r = balsa::sim::run_node_simulation(o);
    ++run;
    ops += r.ops;
    unknown += r.indeterminate;
    crashes += r.crashes;
    restored += r.snapshots_restored;
    saved += r.snapshots_saved;
    abandoned += r.snapshots_abandoned;
    if (!r.ok) {
      ++violations;
      std::cout << fmt::format("seed {} VIOLATION: {}\n  replay: balsa-sim-node --seed {}{} --timeline\n", s,
                               r.violation, s, flags);
      break;  // the first failing seed is what matters; replay it
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << fmt::format(
      "({:.1f} s; {} client ops checked, {} with unknown outcome; {} crashes; snapshots: {} saved, {} abandoned, {} "
      "restored)\n",
      secs, ops, unknown, crashes, saved, abandoned, restored);
  std::cout << fmt::format("{} seeds run, {} violations\n", run, violations);
  return violations == 0 ? 0 : 1;
}
