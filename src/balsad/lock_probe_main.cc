// balsa-lock-probe: a minimal client of the v3lock and v3election gRPC services (etcdctl has
// none: its lock and elect commands run the recipes client-side), for lock_test.sh to drive
// balsad and a real etcd alike. One call per run; prints the outcome on one line, ids as given.
//   balsa-lock-probe ENDPOINT lock NAME LEASE          -> "key <key>" | "error <code> <message>"
//   balsa-lock-probe ENDPOINT unlock KEY
//   balsa-lock-probe ENDPOINT campaign NAME LEASE VALUE -> "leader <name> <key> <rev> <lease>"
//   balsa-lock-probe ENDPOINT proclaim NAME KEY REV LEASE VALUE
//   balsa-lock-probe ENDPOINT leader NAME               -> "kv <key> <value>"
//   balsa-lock-probe ENDPOINT resign NAME KEY REV LEASE
//   balsa-lock-probe ENDPOINT observe NAME COUNT        -> COUNT lines "kv <key> <value>"
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"

namespace {

int report(const grpc::Status& st) {
  std::printf("error %d %s\n", static_cast<int>(st.error_code()), st.error_message().c_str());
  return 1;
}

void deadline(grpc::ClientContext* ctx, int seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ENDPOINT lock|unlock|campaign|proclaim|leader|resign|observe ARGS...\n", argv[0]);
    return 2;
  }
  auto ch = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  const std::string op = argv[2];
  auto arg = [&](int i) -> std::string {
    if (i >= argc) {
      std::fprintf(stderr, "missing argument %d for %s\n", i, op.c_str());
      std::exit(2);
    }
    return argv[i];
  };
  auto leader_key = [&](int i, v3electionpb::LeaderKey* l) {
    l->set_name(arg(i));
    l->set_key(arg(i + 1));
    l->set_rev(std::strtoll(arg(i + 2).c_str(), nullptr, 10));
    l->set_lease(std::strtoll(arg(i + 3).c_str(), nullptr, 10));
  };
  if (op == "lock" || op == "unlock") {
    auto stub = v3lockpb::Lock::NewStub(ch);
    grpc::ClientContext ctx;
    deadline(&ctx, 30);
    if (op == "lock") {
      v3lockpb::LockRequest req;
      req.set_name(arg(3));
      req.set_lease(std::strtoll(arg(4).c_str(), nullptr, 10));
      v3lockpb::LockResponse resp;
      const grpc::Status st = stub->Lock(&ctx, req, &resp);
      if (!st.ok()) return report(st);
      std::printf("key %s\n", resp.key().c_str());
    } else {
      v3lockpb::UnlockRequest req;
      req.set_key(arg(3));
      v3lockpb::UnlockResponse resp;
      const grpc::Status st = stub->Unlock(&ctx, req, &resp);
      if (!st.ok()) return report(st);
      std::printf("unlocked\n");
    }
    return 0;
  }
  auto stub = v3electionpb::Election::NewStub(ch);
  grpc::ClientContext ctx;
  deadline(&ctx, 30);
  if (op == "campaign") {
    v3electionpb::CampaignRequest req;
    req.set_name(arg(3));
    req.set_lease(std::strtoll(arg(4).c_str(), nullptr, 10));
    req.set_value(arg(5));
    v3electionpb::CampaignResponse resp;
    const grpc::Status st = stub->Campaign(&ctx, req, &resp);
    if (!st.ok()) return report(st);
    std::printf("leader %s %s %lld %lld\n", resp.leader().name().c_str(), resp.leader().key().c_str(),
                static_cast<long long>(resp.leader().rev()), static_cast<long long>(resp.leader().lease()));
  } else if (op == "proclaim") {
    v3electionpb::ProclaimRequest req;
    leader_key(3, req.mutable_leader());
    req.set_value(arg(7));
    v3electionpb::ProclaimResponse resp;
    const grpc::Status st = stub->Proclaim(&ctx, req, &resp);
    if (!st.ok()) return report(st);
    std::printf("proclaimed\n");
  } else if (op == "resign") {
    v3electionpb::ResignRequest req;
    leader_key(3, req.mutable_leader());
    v3electionpb::ResignResponse resp;
    const grpc::Status st = stub->Resign(&ctx, req, &resp);
    if (!st.ok()) return report(st);
    std::printf("resigned\n");
  } else if (op == "leader") {
    v3electionpb::LeaderRequest req;
    req.set_name(arg(3));
    v3electionpb::LeaderResponse resp;
    const grpc::Status st = stub->Leader(&ctx, req, &resp);
    if (!st.ok()) return report(st);
    std::printf("kv %s %s\n", resp.kv().key().c_str(), resp.kv().value().c_str());
  } else if (op == "observe") {
    v3electionpb::LeaderRequest req;
    req.set_name(arg(3));
    const int n = std::atoi(arg(4).c_str());
    auto reader = stub->Observe(&ctx, req);
    v3electionpb::LeaderResponse resp;
    for (int i = 0; i < n && reader->Read(&resp); ++i) {
      std::printf("kv %s %s\n", resp.kv().key().c_str(), resp.kv().value().c_str());
      std::fflush(stdout);
    }
    ctx.TryCancel();
  } else {
    std::fprintf(stderr, "unknown operation %s\n", op.c_str());
    return 2;
  }
  return 0;
}
