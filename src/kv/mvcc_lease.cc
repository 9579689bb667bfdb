#include "kv/mvcc_store.h"

// MvccStore's leases: grant, revoke (deleting the attached keys in one write), replicated
// renewal, and the reads TimeToLive and Leases need. No clock here: expiry is the leader's
// decision (LeaseDeadlines), committed as a revoke.

#include <utility>

#include "core/assert.h"

namespace balsa::kv {

Result MvccStore::lease_grant(const pb::LeaseGrantRequest& req, pb::LeaseGrantResponse* resp) {
  if (req.id() == 0) return {errors::lease_not_found(), 0};  // etcd's lessor.Grant(NoLease)
  if (req.ttl() > kMaxLeaseTtlSeconds) return {errors::lease_ttl_too_large(), 0};
  if (!leases_.grant(req.id(), req.ttl())) return {errors::lease_exists(), 0};
  resp->set_id(req.id());
  resp->set_ttl(req.ttl());
  resp->mutable_header()->set_revision(current_rev_);
  if (options_.on_lease) options_.on_lease({LeaseChange::Kind::kGranted, req.id(), req.ttl()});
  return {Status::Ok(), current_rev_};
}

Result MvccStore::lease_revoke(const pb::LeaseRevokeRequest& req, pb::LeaseRevokeResponse* resp) {
  const Lease* lease = leases_.find(req.id());
  if (lease == nullptr) return {errors::lease_not_found(), 0};
  // Copy the keys: end_write detaches them from the set while we walk.
  const std::vector<std::string> keys(lease->keys.begin(), lease->keys.end());
  WriteTxn tw{current_rev_};
  for (const std::string& k : keys) {
    auto it = index_.find(k);
    BALSA_ASSERT(it != index_.end() && !it->second.empty() && !it->second.back().tombstone &&
                     it->second.back().lease == req.id(),
                 "kv: lease {} holds key {} that is not its own", req.id(), k);
    Record tomb;
    tomb.tombstone = true;
    write_record(tw, k, std::move(tomb));
  }
  end_write(tw);
  std::vector<std::string> left;
  leases_.erase(req.id(), &left);
  BALSA_ASSERT(left.empty(), "kv: lease {} still has {} keys after its revoke", req.id(), left.size());
  resp->mutable_header()->set_revision(current_rev_);
  if (options_.on_lease) options_.on_lease({LeaseChange::Kind::kRevoked, req.id(), 0});
  return {Status::Ok(), current_rev_};
}

Result MvccStore::lease_renew(int64_t id, pb::LeaseKeepAliveResponse* resp) {
  resp->set_id(id);
  resp->mutable_header()->set_revision(current_rev_);
  const Lease* lease = leases_.find(id);
  if (lease == nullptr) {
    resp->set_ttl(0);
    return {Status::Ok(), current_rev_};
  }
  resp->set_ttl(lease->ttl);
  if (options_.on_lease) options_.on_lease({LeaseChange::Kind::kRenewed, id, lease->ttl});
  return {Status::Ok(), current_rev_};
}

Result MvccStore::lease_time_to_live(const pb::LeaseTimeToLiveRequest& req,
                                     pb::LeaseTimeToLiveResponse* resp) const {
  const Lease* lease = leases_.find(req.id());
  if (lease == nullptr) return {errors::lease_not_found(), 0};
  resp->set_id(lease->id);
  resp->set_grantedttl(lease->ttl);
  resp->set_ttl(lease->ttl);
  if (req.keys()) {
    for (const std::string& k : lease->keys) resp->add_keys(k);
  }
  resp->mutable_header()->set_revision(current_rev_);
  return {Status::Ok(), current_rev_};
}

Result MvccStore::lease_leases(pb::LeaseLeasesResponse* resp) const {
  for (const auto& [id, l] : leases_.all()) resp->add_leases()->set_id(id);
  resp->mutable_header()->set_revision(current_rev_);
  return {Status::Ok(), current_rev_};
}

void MvccStore::reattach_leases() {
  for (const auto& [key, h] : index_) {
    if (!h.empty() && !h.back().tombstone && h.back().lease != 0) leases_.attach(h.back().lease, key);
  }
}

MvccStore::ImagePoint MvccStore::image_point() const {
  ImagePoint p{current_rev_, compact_rev_, {}};
  p.leases.reserve(leases_.size());
  for (const auto& [id, l] : leases_.all()) p.leases.emplace_back(id, l.ttl);
  return p;
}

}  // namespace balsa::kv
