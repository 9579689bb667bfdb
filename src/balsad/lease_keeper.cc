#include "balsad/lease_keeper.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>
#include <vector>

#include "balsad/service_context.h"

namespace balsa::balsad {

int64_t LeaseKeeper::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void LeaseKeeper::on_change(const kv::LeaseChange& c) {
  std::lock_guard lk(mu_);
  switch (c.kind) {
    case kv::LeaseChange::Kind::kGranted:
    case kv::LeaseChange::Kind::kRenewed: deadlines_.refresh(c.id, c.ttl, now_ms()); break;
    case kv::LeaseChange::Kind::kRevoked: deadlines_.erase(c.id); break;
    case kv::LeaseChange::Kind::kReplaced:
      reload_ = true;
      leader_term_ = 0;  // a leader that restored an image promotes again from it
      break;
  }
}

void LeaseKeeper::start(ServiceContext& s) {
  s_ = &s;
  thread_ = std::thread([this] { run(); });
}

void LeaseKeeper::stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t LeaseKeeper::remaining_s(int64_t id, int64_t granted_ttl) {
  std::lock_guard lk(mu_);
  const int64_t r = deadlines_.remaining_s(id, now_ms());
  return r < 0 ? granted_ttl : r;
}

void LeaseKeeper::run() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    cv_.wait_for(lk, std::chrono::milliseconds(options_.tick_ms));
    if (stop_) break;
    lk.unlock();
    tick();
    lk.lock();
  }
}

void LeaseKeeper::tick() {
  const NodeStatus st = s_->node().status();
  const bool leader = st.role == Role::kLeader && !st.stopped;
  bool promote = false, reload = false;
  {
    std::lock_guard lk(mu_);
    if (!leader) {
      leader_term_ = 0;
    } else if (leader_term_ != st.term.value) {
      promote = true;
    }
    reload = reload_;
  }
  if (promote || reload) {
    // The table as applied here; leases applied after this read arrive through on_change.
    auto leases = s_->sm().read([](const kv::MvccStore& store) {
      std::vector<std::pair<int64_t, int64_t>> out;
      out.reserve(store.leases().size());
      for (const auto& [id, l] : store.leases().all()) out.emplace_back(id, l.ttl);
      return out;
    });
    std::lock_guard lk(mu_);
    const int64_t now = now_ms();
    if (promote) {
      deadlines_.promote(leases, now, options_.election_timeout_ms, options_.revokes_per_s);
      leader_term_ = st.term.value;
      spdlog::info("leases: leader in term {}: {} leases renewed for their TTL + {} ms", st.term.value,
                   leases.size(), options_.election_timeout_ms);
    } else {
      for (const auto& [id, ttl] : leases)
        if (!deadlines_.contains(id)) deadlines_.refresh(id, ttl, now);
    }
    reload_ = false;
  }
  if (!leader) return;
  std::vector<int64_t> due;
  {
    std::lock_guard lk(mu_);
    const auto max = static_cast<size_t>(std::max<int64_t>(1, options_.revokes_per_s * options_.tick_ms / 1000));
    due = deadlines_.take_expired(now_ms(), max, 2 * options_.election_timeout_ms + 1000);
  }
  for (int64_t id : due) {
    ::etcdserverpb::LeaseRevokeRequest req;
    req.set_id(id);
    s_->submit(req, [this, id](const grpc::Status& st, ::balsa::kvpb::KvResult&) {
      if (st.ok()) {
        spdlog::debug("leases: lease {:016x} expired and revoked", id);
      } else if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
        std::lock_guard lk(mu_);  // revoked meanwhile (by its holder): forget it
        deadlines_.erase(id);
      } else {
        spdlog::info("leases: revoke of expired lease {:016x} failed ({}); retried later", id, st.error_message());
      }
    });
  }
}

}  // namespace balsa::balsad
