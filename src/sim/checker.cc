#include "sim/checker.h"

#include <functional>

namespace balsa::sim {

namespace {
uint64_t fnv(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}
uint64_t data_hash(const std::string& s) { return fnv(0xcbf29ce484222325ULL, s.data(), s.size()); }
}  // namespace

uint64_t chain_hash(uint64_t prev, const Entry& e) {
  uint64_t h = fnv(prev ^ 0xcbf29ce484222325ULL, &e.term.value, sizeof e.term.value);
  h = fnv(h, &e.index.value, sizeof e.index.value);
  return fnv(h, e.data.data(), e.data.size());
}

void SafetyChecker::fail(std::string what) {
  if (!violation_) violation_ = std::move(what);
}

void SafetyChecker::on_leader(NodeId node, Term term, uint64_t now) {
  auto [it, inserted] = leaders_.emplace(term.value, node);
  if (!inserted && it->second != node)
    fail("election safety: nodes " + std::to_string(it->second.value) + " and " +
         std::to_string(node.value) + " both leaders of term " + std::to_string(term.value) +
         " (at t=" + std::to_string(now) + ")");
}

void SafetyChecker::on_log_write(NodeId node, const Entry& e, std::optional<Term> prev_term,
                                 LogIndex node_commit) {
  const uint64_t dh = data_hash(e.data) ^ static_cast<uint64_t>(e.type);
  auto [it, inserted] = written_.try_emplace({e.index.value, e.term.value},
                                             Written{dh, prev_term.value_or(Term{0})});
  if (!inserted) {
    if (it->second.data_hash != dh)
      fail("log matching: node " + std::to_string(node.value) + " entry (" +
           std::to_string(e.index.value) + ", term " + std::to_string(e.term.value) +
           ") holds different data than another node's");
    if (prev_term && it->second.prev_term.value != 0 && *prev_term != it->second.prev_term)
      fail("log matching: node " + std::to_string(node.value) + " entry (" +
           std::to_string(e.index.value) + ", term " + std::to_string(e.term.value) +
           ") follows term " + std::to_string(prev_term->value) + " elsewhere " +
           std::to_string(it->second.prev_term.value));
    if (prev_term && it->second.prev_term.value == 0) it->second.prev_term = *prev_term;
  }
  // A node that knows an index is committed never rewrites it. (A lagging node that does not
  // know may legitimately hold, and even receive, a stale entry there.)
  if (e.index <= node_commit && e.index.value <= committed_terms_.size() &&
      committed_terms_[e.index.value - 1] != e.term)
    fail("committed entry changed: node " + std::to_string(node.value) + " wrote term " +
         std::to_string(e.term.value) + " at committed index " + std::to_string(e.index.value) +
         " (committed term " + std::to_string(committed_terms_[e.index.value - 1].value) + ")");
}

void SafetyChecker::on_commit(NodeId node, uint64_t incarnation, LogIndex commit, Term term_at_commit,
                              Term node_term) {
  while (committed_in_.size() < commit.value) committed_in_.push_back(node_term);
  auto& seen = commit_seen_[{node.value, incarnation}];
  if (commit < seen)
    fail("commit index of node " + std::to_string(node.value) + " went back from " +
         std::to_string(seen.value) + " to " + std::to_string(commit.value));
  seen = std::max(seen, commit);
  if (commit.value == 0) return;
  const size_t i = commit.value;
  if (i <= committed_terms_.size()) {
    if (committed_terms_[i - 1] != term_at_commit)
      fail("node " + std::to_string(node.value) + " committed term " +
           std::to_string(term_at_commit.value) + " at " + std::to_string(i) + " where term " +
           std::to_string(committed_terms_[i - 1].value) + " was committed");
  }
}

void SafetyChecker::on_apply(NodeId node, const Entry& e, uint64_t hash) {
  const size_t i = e.index.value;
  if (i <= chain_.size()) {
    if (chain_[i - 1] != hash)
      fail("state machine safety: node " + std::to_string(node.value) + " applied a different entry at " +
           std::to_string(i) + " (term " + std::to_string(e.term.value) + ")");
    return;
  }
  if (i != chain_.size() + 1) {
    fail("state machine safety: node " + std::to_string(node.value) + " applied " +
         std::to_string(i) + " before " + std::to_string(chain_.size() + 1));
    return;
  }
  chain_.push_back(hash);
  canonical_.push_back(e.data);
  // Applied means committed: record it, and check every node that already holds it agrees.
  if (committed_terms_.size() < i) committed_terms_.resize(i);
  committed_terms_[i - 1] = e.term;
  if (!e.data.empty() && e.type == EntryType::kNormal) {
    if (++applied_count_[e.data] > 1)
      fail("exactly once: command " + e.data + " applied twice (again at " + std::to_string(i) + ")");
  }
}

void SafetyChecker::on_restore(NodeId node, LogIndex index, uint64_t hash) {
  const size_t i = index.value;
  if (i == 0) return;
  if (i > chain_.size()) {
    fail("node " + std::to_string(node.value) + " restored a snapshot at " + std::to_string(i) +
         " beyond anything applied anywhere (" + std::to_string(chain_.size()) + ")");
    return;
  }
  if (chain_[i - 1] != hash)
    fail("state machine safety: node " + std::to_string(node.value) + " restored a snapshot at " +
         std::to_string(i) + " whose state differs from the applied sequence");
}

void SafetyChecker::on_ack(const std::string& command, LogIndex index) {
  acked_[command] = index;
  if (index.value > canonical_.size() || canonical_[index.value - 1] != command)
    fail("acknowledged command " + command + " is not the applied entry at " + std::to_string(index.value));
}

void SafetyChecker::finish() {
  for (const auto& [cmd, index] : acked_) {
    auto it = applied_count_.find(cmd);
    if (it == applied_count_.end() || it->second != 1)
      fail("exactly once: acknowledged command " + cmd + " applied " +
           std::to_string(it == applied_count_.end() ? 0 : it->second) + " times");
  }
}

}  // namespace balsa::sim
