#include "kv/lease_deadlines.h"

#include <algorithm>

namespace balsa::kv {

void LeaseDeadlines::set_deadline(int64_t id, int64_t deadline_ms) {
  auto [it, fresh] = leases_.try_emplace(id);
  if (!fresh) by_deadline_.erase({it->second.deadline_ms, id});
  it->second.deadline_ms = deadline_ms;
  it->second.retry_at_ms = 0;
  by_deadline_.emplace(deadline_ms, id);
}

void LeaseDeadlines::refresh(int64_t id, int64_t ttl_s, int64_t now_ms) {
  set_deadline(id, now_ms + ttl_s * 1000);
}

void LeaseDeadlines::erase(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  by_deadline_.erase({it->second.deadline_ms, id});
  leases_.erase(it);
}

void LeaseDeadlines::clear() {
  leases_.clear();
  by_deadline_.clear();
}

void LeaseDeadlines::promote(const std::vector<std::pair<int64_t, int64_t>>& leases,
                             int64_t now_ms, int64_t extend_ms, int64_t revokes_per_s) {
  clear();
  std::vector<std::pair<int64_t, int64_t>> due;  // (deadline, id)
  due.reserve(leases.size());
  for (const auto& [id, ttl] : leases) due.emplace_back(now_ms + extend_ms + ttl * 1000, id);
  std::sort(due.begin(), due.end());
  // Spread: walk in deadline order keeping a one-second window; past the target count in a
  // window, a lease moves to where the rate allows.
  const int64_t per_s = std::max<int64_t>(1, revokes_per_s * 3 / 4);
  int64_t window_start = due.empty() ? 0 : due.front().first;
  int64_t in_window = 0;
  for (auto& [deadline, id] : due) {
    if (deadline >= window_start + 1000) {
      window_start = deadline;
      in_window = 0;
    }
    if (++in_window > per_s) {
      // This lease is the n-th past the target: it falls due n/per_s seconds into the window.
      deadline = std::max(deadline, window_start + 1000 * in_window / per_s);
    }
    set_deadline(id, deadline);
  }
}

std::vector<int64_t> LeaseDeadlines::take_expired(int64_t now_ms, size_t max, int64_t retry_ms) {
  std::vector<int64_t> out;
  for (auto it = by_deadline_.begin(); it != by_deadline_.end() && out.size() < max; ++it) {
    if (it->first > now_ms) break;
    Entry& e = leases_.at(it->second);
    if (e.retry_at_ms > now_ms) continue;
    e.retry_at_ms = now_ms + retry_ms;
    out.push_back(it->second);
  }
  return out;
}

int64_t LeaseDeadlines::remaining_s(int64_t id, int64_t now_ms) const {
  auto it = leases_.find(id);
  if (it == leases_.end()) return -1;
  return std::max<int64_t>(0, (it->second.deadline_ms - now_ms) / 1000);
}

}  // namespace balsa::kv
