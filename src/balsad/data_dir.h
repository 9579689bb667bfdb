// A balsad data dir's identity file, shared by balsad's startup and `balsad restore`.
//
// <data-dir>/member/balsad-id names the member and cluster a data dir belongs to, so a restart
// with flags that resolve to another member or cluster is refused instead of joining with a log
// that is not its own. Written (and fsynced) before the first Raft log file.
#pragma once

#include <string>

#include "balsad/config.h"

namespace balsa::balsad {

std::string identity_text(const Cluster& c);
// Writes `text` to `path` via a fsynced temporary file and rename; false on an I/O error (errno).
bool write_identity(const std::string& path, const std::string& text);

// --wal-dir: the WAL lives there; <raft_dir>/wal is a symlink to it (made on the first start),
// so restarts must name the same --wal-dir. Returns an error text, or "" when all is well.
std::string prepare_wal_dir(const Config& cfg, const std::string& raft_dir, bool has_log);

}  // namespace balsa::balsad
