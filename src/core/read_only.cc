#include "core/read_only.h"

namespace balsa {

void ReadIndexQueue::add(LogIndex index, std::string context, NodeId from, NodeId self) {
  pending_.push_back({Read{index, std::move(context), from}, {self}});
}

std::vector<ReadIndexQueue::Read> ReadIndexQueue::ack(const std::string& context, NodeId from,
                                                      const ProgressTracker& tracker) {
  std::vector<Read> out;
  if (context.empty()) return out;
  for (size_t k = 0; k < pending_.size(); ++k) {
    if (pending_[k].read.context != context) continue;
    pending_[k].acks.insert(from);
    const auto& acks = pending_[k].acks;
    if (!tracker.has_quorum([&](NodeId id) { return acks.contains(id); })) return out;
    // A quorum confirmed leadership at this request's round, so every earlier one is safe too.
    for (size_t j = 0; j <= k; ++j) {
      out.push_back(std::move(pending_.front().read));
      pending_.pop_front();
    }
    return out;
  }
  return out;
}

std::vector<ReadIndexQueue::Read> ReadIndexQueue::release_all() {
  std::vector<Read> out;
  for (auto& p : pending_) out.push_back(std::move(p.read));
  pending_.clear();
  return out;
}

size_t ReadIndexQueue::clear() {
  const size_t n = pending_.size() + deferred_.size();
  pending_.clear();
  deferred_.clear();
  return n;
}

uint64_t Lease::start_round(uint64_t now) {
  if (rounds_.size() >= kMaxRounds) rounds_.pop_front();
  rounds_.push_back(Round{next_round_, now, {}});
  return next_round_++;
}

void Lease::ack(NodeId from, uint64_t round, NodeId self, const ProgressTracker& tracker) {
  if (revoked_ || round <= since_round_) return;
  for (Round& r : rounds_) {
    if (r.number != round) continue;
    r.acks.insert(from);
    const auto& acks = r.acks;
    if (tracker.has_quorum([&](NodeId id) { return id == self || acks.contains(id); })) {
      since_ = r.start;
      since_round_ = r.number;
      while (!rounds_.empty() && rounds_.front().number <= round) rounds_.pop_front();
    }
    return;
  }
}

bool Lease::valid(uint64_t now, int ticks) const {
  return !revoked_ && since_ && ticks > 0 && now < *since_ + static_cast<uint64_t>(ticks);
}

void Lease::reset() {
  rounds_.clear();
  since_.reset();
  since_round_ = next_round_ - 1;  // acks of rounds started before now no longer count
}

}  // namespace balsa
