#include "core/conf_log.h"

#include "core/assert.h"

namespace balsa {

void ConfLog::reset(LogIndex index, Term term, ConfState base) {
  items_.clear();
  items_.push_back(Item{index, term, std::move(base)});
}

void ConfLog::append(LogIndex index, Term term, ConfState conf) {
  BALSA_ASSERT(index > items_.back().index, "configuration at {} appended after one at {}", index.value,
               items_.back().index.value);
  items_.push_back(Item{index, term, std::move(conf)});
}

void ConfLog::compact_to(LogIndex index) {
  size_t keep = 0;  // the newest item at or below index stays: it is the one in effect there
  while (keep + 1 < items_.size() && items_[keep + 1].index <= index) ++keep;
  if (keep > 0) items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(keep));
}

const ConfLog::Item& ConfLog::item_at(LogIndex index) const {
  for (size_t k = items_.size(); k-- > 0;)
    if (items_[k].index <= index) return items_[k];
  return items_.front();
}

const ConfState& ConfLog::at(LogIndex index) const { return item_at(index).conf; }

}  // namespace balsa
