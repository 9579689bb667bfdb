// `balsad restore SNAPSHOT-FILE --name ... --data-dir ... --initial-cluster ...`: builds one new
// member's data dir from a file `etcdctl snapshot save` wrote from balsad (snapshot_file.h),
// with etcdctl snapshot restore's flags and defaults. Run it once per member with the same
// --initial-cluster and --initial-cluster-token; each member starts from a Raft snapshot of the
// image at the source's applied index (term 1) whose voters are the new members, so the new
// cluster has the source's keys, revisions and compaction point, and new member/cluster ids.
// Nothing is written unless the file verifies (size, header, zero padding, SHA-256, and a full
// decode of the image) and the data dir does not exist yet.
#pragma once

namespace balsa::balsad {

// argv[0] is "restore". Returns the process exit status (0, 1 on a bad file or I/O, 2 on bad flags).
int run_restore(int argc, char** argv);

}  // namespace balsa::balsad
