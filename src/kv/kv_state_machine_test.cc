#include "kv/kv_state_machine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace balsa::kv {
namespace {

// Collects what a snapshot writes, counting the write calls (to see that it streams).
class CountingSink final : public ByteSink {
 public:
  void write(std::string_view bytes) override {
    out.append(bytes);
    ++writes;
    max_write = std::max(max_write, bytes.size());
  }
  std::string out;
  size_t writes = 0;
  size_t max_write = 0;
};

// Hands the image back a few bytes at a time.
class TrickleSource final : public ByteSource {
 public:
  explicit TrickleSource(std::string_view in) : in_(in) {}
  size_t read(char* buf, size_t n) override {
    const size_t k = std::min({n, in_.size(), size_t{7}});
    in_.copy(buf, k);
    in_.remove_prefix(k);
    return k;
  }

 private:
  std::string_view in_;
};

pb::PutRequest Put(std::string k, std::string v) {
  pb::PutRequest r;
  r.set_key(std::move(k));
  r.set_value(std::move(v));
  return r;
}

struct Log {
  uint64_t next = 1;
  std::vector<Entry> entries;
  void add(const kvpb::KvCommand& cmd) {
    std::string data;
    Status s = encode_command(cmd, &data);
    ASSERT_TRUE(s.ok()) << s.message;
    entries.push_back(Entry{Term{1}, LogIndex{next++}, EntryType::kNormal, std::move(data)});
  }
  void add_raw(EntryType type, std::string data) {
    entries.push_back(Entry{Term{1}, LogIndex{next++}, type, std::move(data)});
  }
};

// A deterministic random workload of every command kind.
std::vector<kvpb::KvCommand> random_commands(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  auto key = [&] { return "k" + std::to_string(rng() % 40); };
  std::vector<kvpb::KvCommand> out;
  int64_t writes = 1;
  for (int i = 0; i < n; ++i) {
    const uint32_t kind = rng() % 10;
    if (kind < 5) {
      out.push_back(make_command(i, Put(key(), std::string(rng() % 50, 'a' + rng() % 26))));
      ++writes;
    } else if (kind < 7) {
      pb::DeleteRangeRequest d;
      d.set_key(key());
      if (rng() % 2) d.set_range_end(key());
      out.push_back(make_command(i, d));
    } else if (kind < 9) {
      pb::TxnRequest t;
      auto* c = t.add_compare();
      c->set_key(key());
      c->set_target(pb::Compare::VERSION);
      c->set_result(pb::Compare::GREATER);
      c->set_version(rng() % 3);
      *t.add_success()->mutable_request_put() = Put(key(), "s");
      *t.add_failure()->mutable_request_put() = Put(key(), "f");
      out.push_back(make_command(i, t));
    } else {
      pb::CompactionRequest c;
      c.set_revision(writes / 2 + static_cast<int64_t>(rng() % 3));
      out.push_back(make_command(i, c));
    }
  }
  return out;
}

uint32_t hash_of(const KvStateMachine& sm, int64_t rev = 0) {
  pb::HashKVResponse resp;
  Result r = sm.hash_kv(rev, &resp);
  EXPECT_TRUE(r.ok()) << r.status.message;
  return resp.hash();
}

pb::RangeResponse all_keys(const KvStateMachine& sm, int64_t rev = 0) {
  pb::RangeRequest req;
  req.set_key(std::string(1, '\0'));
  req.set_range_end(std::string(1, '\0'));
  req.set_revision(rev);
  pb::RangeResponse resp;
  EXPECT_TRUE(sm.range(req, &resp).ok());
  return resp;
}

TEST(KvStateMachine, AppliesCommandsAndReturnsResults) {
  KvStateMachine sm;
  Log log;
  log.add_raw(EntryType::kNormal, "");  // leader no-op
  log.add(make_command(11, Put("a", "1")));
  log.add_raw(EntryType::kConfChange, "whatever");
  pb::DeleteRangeRequest d;
  d.set_key("nope");
  log.add(make_command(12, d));
  pb::CompactionRequest c;
  c.set_revision(10);
  log.add(make_command(13, c));
  log.add_raw(EntryType::kNormal, "\xff\xff garbage");

  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ(sm.applied_index(), LogIndex{6});
  EXPECT_EQ(results[0], "");
  EXPECT_EQ(results[2], "");

  kvpb::KvResult r;
  ASSERT_TRUE(decode_result(results[1], &r));
  EXPECT_EQ(r.request_id(), 11u);
  EXPECT_TRUE(result_status(r).ok());
  EXPECT_EQ(r.revision(), 2);
  EXPECT_EQ(r.put().header().revision(), 2);

  ASSERT_TRUE(decode_result(results[3], &r));
  EXPECT_EQ(r.request_id(), 12u);
  EXPECT_EQ(r.delete_range().deleted(), 0);
  EXPECT_EQ(r.revision(), 2);

  ASSERT_TRUE(decode_result(results[4], &r));
  EXPECT_EQ(result_status(r), errors::future_rev());
  EXPECT_FALSE(r.has_compaction());

  ASSERT_TRUE(decode_result(results[5], &r));
  EXPECT_EQ(result_status(r), errors::malformed_command());

  auto rev = sm.revisions();
  EXPECT_EQ(rev.current, 2);
  EXPECT_EQ(rev.compact, -1);
  EXPECT_EQ(rev.applied, LogIndex{6});
}

TEST(KvStateMachine, RequestTooLargeIsRefusedBeforeProposing) {
  std::string data;
  auto cmd = make_command(1, Put("k", std::string(kDefaultMaxRequestBytes, 'x')));
  Status s = encode_command(cmd, &data);
  EXPECT_EQ(s, errors::request_too_large());
  EXPECT_EQ(s.code, Code::kInvalidArgument);
  EXPECT_TRUE(encode_command(make_command(1, Put("k", std::string(1000, 'x'))), &data).ok());
  EXPECT_EQ(encode_command(make_command(1, Put("k", std::string(1000, 'x'))), &data, 100),
            errors::request_too_large());
}

TEST(KvStateMachine, SnapshotRoundTripPreservesEverything) {
  KvStateMachine sm;
  Log log;
  for (const auto& cmd : random_commands(7, 3000)) log.add(cmd);
  log.add(make_command(0, Put("big", std::string(200 * 1024, 'v'))));  // larger than a chunk
  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  const auto before = sm.revisions();
  ASSERT_GT(before.compact, 0);

  CountingSink sink;
  sm.save_snapshot(sink);
  EXPECT_GT(sink.writes, 3u);                 // streamed in chunks...
  EXPECT_LE(sink.max_write, 200u * 1024 + 8);  // ...no write holds the whole image

  KvStateMachine restored;
  TrickleSource src(sink.out);
  restored.restore_snapshot(src, before.applied);
  const auto after = restored.revisions();
  EXPECT_EQ(after.current, before.current);
  EXPECT_EQ(after.compact, before.compact);
  EXPECT_EQ(after.applied, before.applied);
  EXPECT_EQ(hash_of(restored), hash_of(sm));
  EXPECT_EQ(hash_of(restored, before.compact + 1), hash_of(sm, before.compact + 1));
  EXPECT_EQ(all_keys(restored).SerializeAsString(), all_keys(sm).SerializeAsString());
  EXPECT_EQ(all_keys(restored, before.compact).SerializeAsString(),
            all_keys(sm, before.compact).SerializeAsString());
  EXPECT_TRUE(sm.read([&](const MvccStore& a) {
    return restored.read([&](const MvccStore& b) { return a == b; });
  }));

  // Both keep applying identically afterwards.
  Log more;
  more.next = before.applied.value + 1;
  for (const auto& cmd : random_commands(8, 500)) more.add(cmd);
  sm.apply(more.entries, &results);
  restored.apply(more.entries, &results);
  EXPECT_EQ(hash_of(restored), hash_of(sm));
}

// The runtime writes snapshot_image() on another thread while apply() goes on: the image must
// be the state when it was taken, byte for byte what save_snapshot wrote then.
TEST(KvStateMachine, SnapshotImageIsThePointInTimeStateWhileApplyContinues) {
  KvStateMachine sm;
  Log log;
  for (const auto& cmd : random_commands(11, 2000)) log.add(cmd);
  for (int k = 0; k < 5000; ++k) log.add(make_command(0, Put(std::string("m").append(std::to_string(k)), "w")));  // several slices
  for (int k = 0; k < 3; ++k)  // 3 MiB of values: the image spans several 1 MiB pieces
    log.add(make_command(0, Put("big" + std::to_string(k), std::string(1 << 20, 'v'))));
  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  const auto at = sm.revisions();
  StringSink expected;
  sm.save_snapshot(expected);
  auto image = sm.snapshot_image();
  ASSERT_TRUE(image);
  Log more;
  more.next = at.applied.value + 1;
  // Writes, deletes and txns on old and new keys, but no compaction (that abandons an image:
  // the next test).
  for (const auto& cmd : random_commands(12, 800))
    if (!cmd.has_compaction()) more.add(cmd);
  for (int k = 0; k < 3000; ++k) more.add(make_command(0, Put(std::string("n").append(std::to_string(k)), "v")));
  std::thread applier([&] {
    std::vector<std::string> r;
    sm.apply(more.entries, &r);
  });
  StringSink got;
  image(got);
  applier.join();
  EXPECT_EQ(got.out.size(), expected.out.size());
  EXPECT_TRUE(got.out == expected.out);
  KvStateMachine restored;
  StringSource src(got.out);
  restored.restore_snapshot(src, at.applied);
  EXPECT_EQ(restored.revisions().current, at.current);
  EXPECT_NE(sm.revisions().current, at.current);  // the original moved on meanwhile
}

// A compaction while the image is written removes history the image needs: the writer must
// give up (SnapshotAbandoned) rather than write a state that never existed.
TEST(KvStateMachine, CompactionWhileTheImageIsWrittenAbandonsIt) {
  KvStateMachine sm;
  Log log;
  for (int k = 0; k < 100; ++k) log.add(make_command(0, Put(std::string("k").append(std::to_string(k % 10)), std::to_string(k))));
  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  auto image = sm.snapshot_image();
  ASSERT_TRUE(image);
  // The sink applies a compaction when the header arrives, i.e. between two slices.
  struct CompactingSink final : ByteSink {
    KvStateMachine* sm;
    Log* log;
    bool done = false;
    void write(std::string_view) override {
      if (done) return;
      done = true;
      pb::CompactionRequest c;
      c.set_revision(50);
      Log more;
      more.next = log->next;
      more.add(make_command(0, c));
      std::vector<std::string> r;
      sm->apply(more.entries, &r);
    }
  } sink;
  sink.sm = &sm;
  sink.log = &log;
  EXPECT_THROW(image(sink), SnapshotAbandoned);
  // Without a compaction in between, an image taken now completes.
  StringSink ok;
  ASSERT_NO_THROW(sm.snapshot_image()(ok));
  StringSink expected;
  sm.save_snapshot(expected);
  EXPECT_TRUE(ok.out == expected.out);
}

TEST(KvStateMachine, MemberAttributesChangeNoRevisionAndSurviveSnapshots) {
  KvStateMachine sm;
  Log log;
  log.add(make_command(0, Put("k", "v")));
  kvpb::MemberAttributes a;
  a.set_member_id(42);
  a.set_name("m1");
  a.add_client_urls("http://127.0.0.1:2379");
  log.add(make_command(0, a));
  a.set_member_id(7);
  a.set_name("m0");
  a.clear_client_urls();
  a.add_client_urls("http://127.0.0.1:1");
  a.add_client_urls("http://127.0.0.1:2");
  log.add(make_command(0, a));
  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  EXPECT_EQ(sm.revisions().current, 2);  // only the put moved it
  kvpb::KvResult r;
  ASSERT_TRUE(decode_result(results[1], &r));
  EXPECT_EQ(r.code(), 0);
  EXPECT_EQ(r.revision(), 2);
  auto members = sm.members();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].member_id(), 7u);  // by id
  EXPECT_EQ(members[0].client_urls_size(), 2);
  EXPECT_EQ(members[1].name(), "m1");

  CountingSink sink;
  sm.save_snapshot(sink);
  KvStateMachine restored;
  TrickleSource src(sink.out);
  restored.restore_snapshot(src, sm.applied_index());
  members = restored.members();
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].SerializeAsString(), sm.members()[0].SerializeAsString());
  EXPECT_EQ(members[1].SerializeAsString(), sm.members()[1].SerializeAsString());
  EXPECT_EQ(hash_of(restored), hash_of(sm));
}

// Images written before the member section ("BALSASM1") still restore.
TEST(KvStateMachine, RestoresVersion1Images) {
  KvStateMachine sm;
  Log log;
  for (const auto& cmd : random_commands(3, 200)) log.add(cmd);
  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  CountingSink sink;
  sm.save_snapshot(sink);
  ASSERT_EQ(sink.out.substr(0, 8), "BALSASM2");
  ASSERT_EQ(sink.out.substr(16, 4), std::string(4, '\0'));  // no members
  const std::string v1 = "BALSASM1" + sink.out.substr(8, 8) + sink.out.substr(20);
  KvStateMachine restored;
  TrickleSource src(v1);
  restored.restore_snapshot(src, sm.applied_index());
  EXPECT_EQ(hash_of(restored), hash_of(sm));
  EXPECT_TRUE(restored.members().empty());
}

TEST(KvStateMachine, CorruptOrMismatchedSnapshotsAreRejected) {
  KvStateMachine sm;
  Log log;
  for (const auto& cmd : random_commands(3, 200)) log.add(cmd);
  std::vector<std::string> results;
  sm.apply(log.entries, &results);
  StringSink sink;
  sm.save_snapshot(sink);
  const uint32_t want = hash_of(sm);

  KvStateMachine other;
  {
    StringSource src(sink.out);
    EXPECT_THROW(other.restore_snapshot(src, LogIndex{5}), std::runtime_error);
  }
  std::string bad = sink.out;
  bad[bad.size() / 2] ^= 0x40;
  {
    StringSource src(bad);
    EXPECT_THROW(other.restore_snapshot(src, sm.applied_index()), std::runtime_error);
  }
  {
    StringSource src(std::string_view(sink.out).substr(0, sink.out.size() - 3));
    EXPECT_THROW(other.restore_snapshot(src, sm.applied_index()), std::runtime_error);
  }
  EXPECT_EQ(other.applied_index(), LogIndex{0});  // unchanged by the failures
  StringSource good(sink.out);
  other.restore_snapshot(good, sm.applied_index());
  EXPECT_EQ(hash_of(other), want);
}

TEST(KvStateMachine, MembersGivenTheSameLogAgree) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    KvStateMachine a, b;
    Log log;
    for (const auto& cmd : random_commands(seed, 2000)) log.add(cmd);
    std::vector<std::string> ra, rb;
    // Different batchings of the same log.
    a.apply(log.entries, &ra);
    for (const Entry& e : log.entries) b.apply(std::span<const Entry>(&e, 1), &rb);
    EXPECT_EQ(ra, rb);
    EXPECT_EQ(hash_of(a), hash_of(b));
    EXPECT_EQ(a.revisions().current, b.revisions().current);
  }
}

TEST(KvStateMachine, ReadsRunConcurrentlyWithApply) {
  KvStateMachine sm;
  Log log;
  for (int i = 0; i < 5000; ++i) {
    std::string key = "k";  // (not "k" + to_string: GCC 12 raises a false -Wrestrict on it here)
    key += std::to_string(i % 50);
    log.add(make_command(i, Put(key, "v")));
  }
  std::atomic<bool> done{false};
  std::thread reader([&] {
    int64_t last = 0;
    while (!done.load()) {
      pb::RangeResponse resp = all_keys(sm);
      // Revisions never go backwards and every kv is consistent with the header.
      EXPECT_GE(resp.header().revision(), last);
      last = resp.header().revision();
      for (const auto& kv : resp.kvs()) EXPECT_LE(kv.mod_revision(), last);
    }
  });
  std::vector<std::string> results;
  for (size_t i = 0; i < log.entries.size(); i += 100) {
    sm.apply(std::span<const Entry>(log.entries).subspan(i, 100), &results);
  }
  done = true;
  reader.join();
  EXPECT_EQ(sm.revisions().current, 5001);
}

}  // namespace
}  // namespace balsa::kv
