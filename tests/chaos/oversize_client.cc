// balsa-oversize-client: requests over balsad's limits, through a real gRPC client. Prints one
// JSON line per case with the status the server answered; exit 0 when every case was refused
// with the expected code and a put of ordinary size still succeeds afterwards.
//   over-limit put   value of 1.6 MiB: over --max-request-bytes (1.5 MiB), under gRPC's cap:
//                    balsad must refuse it (INVALID_ARGUMENT "request is too large")
//   over-grpc-cap    value of 3 MiB: over the gRPC receive cap, refused before any handler
//                    (RESOURCE_EXHAUSTED)
//   too many ops     a Txn with 10,000 puts: over the Txn op limit (INVALID_ARGUMENT)
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace pb = ::etcdserverpb;

int main(int argc, char** argv) {
  std::string endpoint;
  int rounds = 1;
  CLI::App app{"balsa-oversize-client: requests over balsad's size limits"};
  app.add_option("--endpoint", endpoint, "host:port")->required();
  app.add_option("--rounds", rounds, "Times to send each case")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto stub = pb::KV::NewStub(grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
  bool all_ok = true;
  auto report = [&](const char* name, const grpc::Status& s, grpc::StatusCode want) {
    const bool ok = s.error_code() == want;
    all_ok = all_ok && ok;
    std::printf("%s\n", nlohmann::json{{"case", name},
                                       {"code", static_cast<int>(s.error_code())},
                                       {"message", s.error_message()},
                                       {"expected", static_cast<int>(want)},
                                       {"ok", ok}}
                            .dump()
                            .c_str());
  };
  auto put = [&](size_t bytes) {
    pb::PutRequest req;
    req.set_key("oversize");
    req.set_value(std::string(bytes, 'x'));
    pb::PutResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub->Put(&ctx, req, &resp);
  };
  for (int r = 0; r < rounds; ++r) {
    report("over-limit put (1.6 MiB)", put(1600 * 1024), grpc::StatusCode::INVALID_ARGUMENT);
    report("over-grpc-cap put (3 MiB)", put(3 << 20), grpc::StatusCode::RESOURCE_EXHAUSTED);
    pb::TxnRequest txn;
    for (int i = 0; i < 10000; ++i) {
      pb::PutRequest* p = txn.add_success()->mutable_request_put();
      p->set_key("t" + std::to_string(i));
      p->set_value("v");
    }
    pb::TxnResponse tresp;
    grpc::ClientContext tctx;
    tctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    report("txn of 10000 ops", stub->Txn(&tctx, txn, &tresp), grpc::StatusCode::INVALID_ARGUMENT);
  }
  report("ordinary put afterwards", put(100), grpc::StatusCode::OK);
  return all_ok ? 0 : 1;
}
