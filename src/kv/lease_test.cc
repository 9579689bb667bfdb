// Leases: the replicated table inside MvccStore (grant, attach, revoke with delete events,
// renew, TimeToLive, snapshot images old and new) and the clock half, LeaseDeadlines (expiry
// decisions, renewal, promotion after an election, pile-up spreading).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kv/command.h"
#include "kv/crc32c.h"
#include "kv/lease_deadlines.h"
#include "kv/mvcc_store.h"

namespace balsa::kv {
namespace {

Status grant(MvccStore& s, int64_t id, int64_t ttl = 10) {
  pb::LeaseGrantRequest g;
  g.set_id(id);
  g.set_ttl(ttl);
  pb::LeaseGrantResponse resp;
  Result r = s.lease_grant(g, &resp);
  if (r.ok()) {
    EXPECT_EQ(resp.id(), id);
    EXPECT_EQ(resp.ttl(), ttl);
  }
  return r.status;
}
Result revoke(MvccStore& s, int64_t id) {
  pb::LeaseRevokeRequest r;
  r.set_id(id);
  pb::LeaseRevokeResponse resp;
  return s.lease_revoke(r, &resp);
}
Result put(MvccStore& s, std::string k, std::string v, int64_t lease = 0) {
  pb::PutRequest p;
  p.set_key(std::move(k));
  p.set_value(std::move(v));
  p.set_lease(lease);
  pb::PutResponse resp;
  return s.put(p, &resp);
}
std::vector<std::string> keys_of(const MvccStore& s, int64_t id) {
  pb::LeaseTimeToLiveRequest q;
  q.set_id(id);
  q.set_keys(true);
  pb::LeaseTimeToLiveResponse resp;
  EXPECT_TRUE(s.lease_time_to_live(q, &resp).ok());
  return {resp.keys().begin(), resp.keys().end()};
}
int64_t count(const MvccStore& s, std::string k, std::string end = "") {
  pb::RangeRequest r;
  r.set_key(std::move(k));
  r.set_range_end(std::move(end));
  pb::RangeResponse resp;
  EXPECT_TRUE(s.range(r, &resp).ok());
  return resp.count();
}

TEST(Lease, GrantErrorsAreEtcds) {
  MvccStore s;
  EXPECT_TRUE(grant(s, 1).ok());
  EXPECT_EQ(grant(s, 1), errors::lease_exists());
  EXPECT_EQ(errors::lease_exists().code, Code::kFailedPrecondition);
  EXPECT_EQ(grant(s, 0), errors::lease_not_found());
  EXPECT_EQ(grant(s, 2, kMaxLeaseTtlSeconds + 1), errors::lease_ttl_too_large());
  EXPECT_TRUE(grant(s, 2, kMaxLeaseTtlSeconds).ok());
  EXPECT_EQ(s.current_revision(), 1);  // grants change no revision
  pb::LeaseLeasesResponse l;
  ASSERT_TRUE(s.lease_leases(&l).ok());
  ASSERT_EQ(l.leases_size(), 2);
  EXPECT_EQ(l.leases(0).id(), 1);
  EXPECT_EQ(l.leases(1).id(), 2);
}

TEST(Lease, KeysFollowTheirNewestRecord) {
  MvccStore s;
  ASSERT_TRUE(grant(s, 1).ok());
  ASSERT_TRUE(grant(s, 2).ok());
  ASSERT_TRUE(put(s, "a", "1", 1).ok());
  ASSERT_TRUE(put(s, "b", "1", 1).ok());
  ASSERT_TRUE(put(s, "c", "1", 2).ok());
  EXPECT_EQ(keys_of(s, 1), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(put(s, "b", "2", 2).ok());  // moves to lease 2
  ASSERT_TRUE(put(s, "a", "2").ok());     // detached
  EXPECT_EQ(keys_of(s, 1), std::vector<std::string>{});
  EXPECT_EQ(keys_of(s, 2), (std::vector<std::string>{"b", "c"}));
  pb::DeleteRangeRequest d;
  d.set_key("c");
  pb::DeleteRangeResponse dr;
  ASSERT_TRUE(s.delete_range(d, &dr).ok());
  EXPECT_EQ(keys_of(s, 2), std::vector<std::string>{"b"});
  // ignore_lease keeps the attachment; ignore_value with a new lease moves it.
  pb::PutRequest p;
  p.set_key("b");
  p.set_value("3");
  p.set_ignore_lease(true);
  pb::PutResponse pr;
  ASSERT_TRUE(s.put(p, &pr).ok());
  EXPECT_EQ(keys_of(s, 2), std::vector<std::string>{"b"});
  p.Clear();
  p.set_key("b");
  p.set_ignore_value(true);
  p.set_lease(1);
  ASSERT_TRUE(s.put(p, &pr).ok());
  EXPECT_EQ(keys_of(s, 1), std::vector<std::string>{"b"});
  EXPECT_EQ(keys_of(s, 2), std::vector<std::string>{});
}

TEST(Lease, AFailedTxnLeavesAttachmentsAlone) {
  MvccStore s;
  ASSERT_TRUE(grant(s, 1).ok());
  pb::TxnRequest t;
  auto* op = t.add_success()->mutable_request_put();
  op->set_key("a");
  op->set_lease(1);
  auto* bad = t.add_success()->mutable_request_put();
  bad->set_key("b");
  bad->set_lease(99);  // unknown: the whole txn fails
  pb::TxnResponse tr;
  EXPECT_EQ(s.txn(t, &tr).status, errors::lease_not_found());
  EXPECT_EQ(keys_of(s, 1), std::vector<std::string>{});
}

TEST(Lease, RevokeDeletesTheKeysInOneRevisionWithDeleteEvents) {
  std::vector<std::pair<int64_t, std::vector<mvccpb::Event>>> seen;
  std::vector<LeaseChange> changes;
  MvccStore::Options o;
  o.on_events = [&](int64_t rev, std::vector<mvccpb::Event>&& evs) { seen.emplace_back(rev, std::move(evs)); };
  o.on_lease = [&](const LeaseChange& c) { changes.push_back(c); };
  MvccStore s(o);
  ASSERT_TRUE(grant(s, 7, 5).ok());
  ASSERT_TRUE(put(s, "k1", "v", 7).ok());  // 2
  ASSERT_TRUE(put(s, "k2", "v", 7).ok());  // 3
  ASSERT_TRUE(put(s, "other", "v").ok());  // 4
  seen.clear();
  Result r = revoke(s, 7);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.revision, 5);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, 5);
  ASSERT_EQ(seen[0].second.size(), 2u);
  EXPECT_EQ(seen[0].second[0].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(seen[0].second[0].kv().key(), "k1");
  EXPECT_EQ(seen[0].second[1].kv().key(), "k2");
  EXPECT_EQ(count(s, "k", "l"), 0);
  EXPECT_EQ(count(s, "other"), 1);
  EXPECT_FALSE(s.leases().contains(7));
  // Twice: etcd's error; a put on the revoked lease fails too.
  EXPECT_EQ(revoke(s, 7).status, errors::lease_not_found());
  EXPECT_EQ(put(s, "k1", "v", 7).status, errors::lease_not_found());
  // An empty lease revokes without a revision.
  ASSERT_TRUE(grant(s, 8).ok());
  EXPECT_EQ(revoke(s, 8).revision, 5);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].kind, LeaseChange::Kind::kGranted);
  EXPECT_EQ(changes[0].ttl, 5);
  EXPECT_EQ(changes[1].kind, LeaseChange::Kind::kRevoked);
}

TEST(Lease, RenewAndTimeToLiveOfUnknownAndKnown) {
  MvccStore s;
  pb::LeaseKeepAliveResponse ka;
  ASSERT_TRUE(s.lease_renew(3, &ka).ok());
  EXPECT_EQ(ka.id(), 3);
  EXPECT_EQ(ka.ttl(), 0);  // etcd's LeaseKeepAlive: unknown lease -> TTL 0
  ASSERT_TRUE(grant(s, 3, 9).ok());
  ASSERT_TRUE(s.lease_renew(3, &ka).ok());
  EXPECT_EQ(ka.ttl(), 9);
  pb::LeaseTimeToLiveRequest q;
  q.set_id(4);
  pb::LeaseTimeToLiveResponse t;
  EXPECT_EQ(s.lease_time_to_live(q, &t).status, errors::lease_not_found());
  q.set_id(3);
  ASSERT_TRUE(s.lease_time_to_live(q, &t).ok());
  EXPECT_EQ(t.grantedttl(), 9);
  EXPECT_EQ(t.keys_size(), 0);
}

TEST(Lease, CommandsRoundTripThroughTheLogFormat) {
  MvccStore s;
  pb::LeaseGrantRequest g;
  g.set_id(11);
  g.set_ttl(4);
  std::string bytes;
  ASSERT_TRUE(encode_command(make_command(1, g), &bytes).ok());
  kvpb::KvCommand cmd;
  ASSERT_TRUE(decode_command(bytes, &cmd));
  kvpb::KvResult r = execute_command(s, cmd);
  EXPECT_EQ(r.code(), 0);
  EXPECT_EQ(r.lease_grant().id(), 11);
  r = execute_command(s, cmd);  // again: exists
  EXPECT_EQ(result_status(r), errors::lease_exists());
  kvpb::LeaseRenew renew;
  renew.set_id(11);
  r = execute_command(s, make_command(2, renew));
  EXPECT_EQ(r.lease_renew().ttl(), 4);
  pb::LeaseRevokeRequest rv;
  rv.set_id(11);
  r = execute_command(s, make_command(3, rv));
  EXPECT_EQ(r.code(), 0);
  r = execute_command(s, make_command(4, rv));
  EXPECT_EQ(result_status(r), errors::lease_not_found());
}

MvccStore with_leases() {
  MvccStore s;
  EXPECT_TRUE(grant(s, 1, 5).ok());
  EXPECT_TRUE(grant(s, -4, 30).ok());  // ids are int64: negative ones order first
  EXPECT_TRUE(put(s, "a", "1", 1).ok());
  EXPECT_TRUE(put(s, "b", "1", -4).ok());
  EXPECT_TRUE(put(s, "c", "1").ok());
  EXPECT_TRUE(put(s, "a", "2", -4).ok());
  return s;
}

TEST(LeaseSnapshot, RoundTripKeepsLeasesAndTheirKeys) {
  MvccStore s = with_leases();
  StringSink out;
  s.save(out, 64);
  MvccStore r;
  StringSource in(out.out);
  r.restore(in);
  EXPECT_TRUE(r == s);
  EXPECT_EQ(keys_of(r, -4), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(keys_of(r, 1), std::vector<std::string>{});
  // Revoking in the restored store deletes the same keys at the same revision.
  Result a = revoke(s, -4), b = revoke(r, -4);
  EXPECT_EQ(a.revision, b.revision);
  EXPECT_TRUE(r == s);
}

TEST(LeaseSnapshot, PointInTimeImageHoldsTheLeasesOfItsPoint) {
  MvccStore s = with_leases();
  const MvccStore::ImagePoint at = s.image_point();
  StringSink want;
  s.save(want);
  ASSERT_TRUE(grant(s, 50).ok());
  ASSERT_TRUE(revoke(s, 1).ok());
  ASSERT_TRUE(put(s, "d", "1", 50).ok());
  StringSink got;
  s.write_image(at, got, [](const std::function<void()>& f) { f(); }, 1);
  EXPECT_EQ(got.out, want.out);
}

// A "BALSAKV1" image (written before leases existed) restores: same layout without the lease
// section. Built from a lease-free store's current image by dropping that section.
TEST(LeaseSnapshot, VersionOneImageStillRestores) {
  MvccStore s;
  ASSERT_TRUE(put(s, "x", "1").ok());
  ASSERT_TRUE(put(s, "y", "2").ok());
  StringSink out;
  s.save(out);
  std::string v2 = out.out;
  ASSERT_EQ(v2.substr(0, 8), "BALSAKV2");
  std::string v1 = "BALSAKV1" + v2.substr(8, v2.size() - 8 - 8 - 4);  // drop lease count + crc
  Crc32c crc;
  crc.update(v1);
  for (int i = 0; i < 4; ++i) v1.push_back(static_cast<char>(crc.value() >> (8 * i)));
  MvccStore r;
  StringSource in(v1);
  r.restore(in);
  EXPECT_TRUE(r == s);
  EXPECT_EQ(r.leases().size(), 0u);
}

TEST(LeaseSnapshot, CorruptLeaseSectionIsRefused) {
  MvccStore s = with_leases();
  StringSink out;
  s.save(out);
  std::string img = out.out;
  // The lease section is the last 8 + 2*16 bytes before the CRC; zero the first lease id.
  std::string bad = img.substr(0, img.size() - 4);
  const size_t first_id = bad.size() - 32;
  for (size_t i = 0; i < 8; ++i) bad[first_id + i] = 0;
  Crc32c crc;
  crc.update(bad);
  for (int i = 0; i < 4; ++i) bad.push_back(static_cast<char>(crc.value() >> (8 * i)));
  MvccStore r;
  StringSource in(bad);
  EXPECT_THROW(r.restore(in), std::runtime_error);
  EXPECT_EQ(r.leases().size(), 0u);  // unchanged
  // A key naming a lease the image lacks: drop the lease -4 entry (count 1).
  std::string no_lease = img.substr(0, img.size() - 4 - 40);
  for (int i = 0; i < 8; ++i) no_lease.push_back(i == 0 ? 1 : 0);
  no_lease += img.substr(img.size() - 4 - 16, 16);  // lease 1 only
  Crc32c c2;
  c2.update(no_lease);
  for (int i = 0; i < 4; ++i) no_lease.push_back(static_cast<char>(c2.value() >> (8 * i)));
  StringSource in2(no_lease);
  try {
    r.restore(in2);
    FAIL() << "restored an image whose key names a missing lease";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("lease the image does not hold"), std::string::npos) << e.what();
  }
}

// ---- LeaseDeadlines ---------------------------------------------------------------------------

TEST(LeaseDeadlines, ExpiresAfterTtlUnlessRefreshed) {
  LeaseDeadlines d;
  d.refresh(1, 2, 0);      // due at 2000
  d.refresh(2, 5, 0);      // due at 5000
  EXPECT_TRUE(d.take_expired(1999, 10, 1000).empty());
  EXPECT_EQ(d.remaining_s(1, 500), 1);
  d.refresh(1, 2, 1500);   // keep-alive: due at 3500
  EXPECT_TRUE(d.take_expired(3000, 10, 1000).empty());
  EXPECT_EQ(d.take_expired(3500, 10, 1000), std::vector<int64_t>{1});
  // In flight: not offered again until the retry time, then offered again.
  EXPECT_TRUE(d.take_expired(4000, 10, 1000).empty());
  EXPECT_EQ(d.take_expired(5000, 10, 1000), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(d.remaining_s(1, 9000), 0);
  d.erase(1);
  EXPECT_EQ(d.remaining_s(1, 9000), -1);
  EXPECT_EQ(d.take_expired(9000, 1, 0), std::vector<int64_t>{2});  // max respected
}

TEST(LeaseDeadlines, PromotionRenewsEveryLeaseWithTheElectionExtension) {
  LeaseDeadlines d;
  d.refresh(1, 10, 0);  // would be due at 10000
  // A new leader at t=9000 (the old one died): full TTL again plus the election timeout.
  d.promote({{1, 10}, {2, 3}}, 9000, 1000, 1000);
  EXPECT_TRUE(d.take_expired(12999, 10, 1000).empty());
  EXPECT_EQ(d.take_expired(13000, 10, 1000), std::vector<int64_t>{2});
  d.erase(2);  // its revoke applied
  EXPECT_TRUE(d.take_expired(19999, 10, 1000).empty());
  EXPECT_EQ(d.take_expired(20000, 10, 1000), std::vector<int64_t>{1});
}

TEST(LeaseDeadlines, PromotionSpreadsAPileUp) {
  LeaseDeadlines d;
  std::vector<std::pair<int64_t, int64_t>> many;
  for (int64_t i = 1; i <= 3000; ++i) many.emplace_back(i, 5);
  d.promote(many, 0, 0, 1000);  // at most 750 due per second
  for (int64_t t = 5000; t < 10000; t += 1000) {
    const size_t n = d.take_expired(t + 999, 100000, 100000).size();
    EXPECT_LE(n, 750u) << "second starting at " << t;
  }
  EXPECT_EQ(d.take_expired(100000, 100000, 100000).size(), 0u);  // all were handed out
}

}  // namespace
}  // namespace balsa::kv
