// The configurations recorded in the log, by index. A configuration takes effect when its entry
// is appended (thesis §4.1), so a node's active configuration is the newest one in its log, and
// a truncated entry takes its configuration with it. The base is the configuration of the
// snapshot (or of a new cluster, at index 0); it is never truncated.
#pragma once

#include <vector>

#include "core/types.h"

namespace balsa {

class ConfLog {
 public:
  struct Item {
    LogIndex index;
    Term term;
    ConfState conf;
  };

  void reset(LogIndex index, Term term, ConfState base);
  // Records the configuration of the kConfChange entry (index, term); index > latest_index().
  void append(LogIndex index, Term term, ConfState conf);
  // Drops every configuration whose entry is gone from the log: above `last`, or whose term no
  // longer matches. `term_at` gives the log's term of an index (0 if none). Returns true if the
  // latest configuration changed.
  template <typename TermAt>
  bool drop_missing(LogIndex last, const TermAt& term_at) {
    bool changed = false;
    while (items_.size() > 1 && (items_.back().index > last || term_at(items_.back().index) != items_.back().term)) {
      items_.pop_back();
      changed = true;
    }
    return changed;
  }
  // Forgets configurations superseded at or below `index` (they can no longer be asked for).
  void compact_to(LogIndex index);

  const ConfState& latest() const { return items_.back().conf; }
  LogIndex latest_index() const { return items_.back().index; }
  // The configuration in effect once the log holds everything up to `index`.
  const ConfState& at(LogIndex index) const;
  // Newest configuration whose entry is at or below `index` and its index.
  const Item& item_at(LogIndex index) const;
  size_t size() const { return items_.size(); }

 private:
  std::vector<Item> items_{Item{}};  // ascending index; items_[0] is the base
};

}  // namespace balsa
