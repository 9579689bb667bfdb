// The simulator's safety oracle. It watches every node's log, commit index, applied sequence
// and role, and records the first violation of a Raft safety property:
//   - Election Safety: at most one leader per term.
//   - Log Matching: two entries with the same index and term hold the same data and follow
//     the same history (checked incrementally: (index, term) determines the data and the
//     previous entry's term everywhere).
//   - Leader Completeness: a new leader holds every entry committed before its term.
//   - Committed entries never change or vanish: any entry written at a committed index is the
//     committed one; per node incarnation, the commit index never goes back.
//   - State Machine Safety: every node applies a prefix of one sequence (hash chain).
//   - Exactly once: a command is applied at most once; an acknowledged one exactly once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/types.h"

namespace balsa::sim {

// Hash of the applied sequence up to an index: h(i) = mix(h(i-1), term, data).
uint64_t chain_hash(uint64_t prev, const Entry& e);

class SafetyChecker {
 public:
  void on_leader(NodeId node, Term term, uint64_t now);
  // An entry written to a node's log (from a Ready). prev_term is the term of index-1 in that
  // node's log at the time (nullopt if unknown: compacted). node_commit is the node's durable
  // commit index: an entry at or below it must never change.
  void on_log_write(NodeId node, const Entry& e, std::optional<Term> prev_term, LogIndex node_commit);
  // A node's commit index (it holds `term_at_commit` there); `node_term` is the node's current
  // term, taken as the term in which the entries up to `commit` were first known committed.
  void on_commit(NodeId node, uint64_t incarnation, LogIndex commit, Term term_at_commit, Term node_term);
  // A node applied entry e, its hash chain now being `hash`.
  void on_apply(NodeId node, const Entry& e, uint64_t hash);
  // A node restored a snapshot at index with the given chain hash.
  void on_restore(NodeId node, LogIndex index, uint64_t hash);
  // Leader completeness: a leader of `term` holds every entry committed in an earlier term.
  // (Entries committed in `term` or later need not be there: a vote from an older term may
  // arrive late and elect a leader after a later term has committed more.) `term_of(i)`
  // answers the new leader's term at i (nullopt: compacted).
  template <typename F>
  void check_leader_complete(NodeId node, Term term, LogIndex first_index, F term_of);
  void on_ack(const std::string& command, LogIndex index);

  // At the end of a run: acknowledged commands applied exactly once.
  void finish();

  bool ok() const { return !violation_; }
  const std::optional<std::string>& violation() const { return violation_; }
  LogIndex max_committed() const { return LogIndex{committed_terms_.size()}; }

 private:
  void fail(std::string what);

  std::optional<std::string> violation_;
  std::unordered_map<uint64_t, NodeId> leaders_;  // term -> leader
  struct Written { uint64_t data_hash; Term prev_term; };
  std::map<std::pair<uint64_t, uint64_t>, Written> written_;  // (index, term) -> what it holds
  std::vector<Term> committed_terms_;                          // [i-1] = term committed at i
  std::vector<Term> committed_in_;                             // [i-1] = term i was first known committed in
  std::vector<uint64_t> chain_;                                // [i-1] = canonical hash at i
  std::vector<std::string> canonical_;                         // [i-1] = canonical data at i
  std::unordered_map<std::string, uint64_t> applied_count_;    // command -> times in canonical
  std::unordered_map<std::string, LogIndex> acked_;
  std::map<std::pair<uint64_t, uint64_t>, LogIndex> commit_seen_;  // (node, incarnation) -> commit
};

template <typename F>
void SafetyChecker::check_leader_complete(NodeId node, Term term, LogIndex first_index, F term_of) {
  for (size_t k = 0; k < committed_terms_.size(); ++k) {
    const LogIndex i{k + 1};
    if (i < first_index) continue;  // covered by the leader's snapshot
    // Known committed only in this term or later (or not yet seen in on_commit): not required.
    if (k >= committed_in_.size() || committed_in_[k] >= term) continue;
    std::optional<Term> t = term_of(i);
    if (!t || *t != committed_terms_[k]) {
      fail("leader completeness: node " + std::to_string(node.value) + " leader of term " +
           std::to_string(term.value) + " lacks committed entry " + std::to_string(i.value) +
           " of term " + std::to_string(committed_terms_[k].value));
      return;
    }
  }
}

}  // namespace balsa::sim
