// A deterministic cluster simulator: 3, 5 or 7 Raft nodes in one process on simulated time,
// every random choice drawn from one 64-bit seed. The network drops, delays, duplicates and
// reorders messages and can be partitioned (symmetric, asymmetric, bridge); nodes crash,
// losing everything not yet reported durable, and restart. Clients propose throughout.
//
// A run has a safety phase (faults on, a SafetyChecker watching every event) and a liveness
// phase (faults healed): within `liveness_ticks` a leader must be known to every node, every
// outstanding proposal must resolve, and every node must apply the same log.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "core/raft.h"

namespace balsa::sim {

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 5;
  PlantedBug planted_bug = PlantedBug::kNone;
  bool membership = true;    // membership changes in the fault mix
  int safety_ticks = 300;    // ticks of faults
  int liveness_ticks = 300;  // bound for recovery after healing (a tick is 10 ms simulated)
  std::ostream* trace = nullptr;     // every event, one line each
  std::ostream* timeline = nullptr;  // leader changes, faults, commit progress
};

struct SimResult {
  bool ok = true;
  std::string violation;     // empty when ok
  uint64_t trace_hash = 0;   // hash over every event: equal seeds give equal hashes
  uint64_t events = 0;
  uint64_t committed = 0;    // entries applied (the canonical sequence length)
  uint64_t acked = 0;        // client proposals acknowledged
  uint64_t elections = 0;    // leaders elected
  uint64_t crashes = 0;
  uint64_t messages = 0;
  uint64_t conf_changes = 0;  // configuration changes proposed and appended
  uint64_t lease_reads = 0;   // lease reads served (and checked)
};

SimResult run_simulation(const SimOptions& options);

}  // namespace balsa::sim
