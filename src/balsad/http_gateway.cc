#include "balsad/http_gateway.h"

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace balsa::balsad {

namespace {

struct ProcStat {
  double cpu_seconds = 0;
  double start_seconds = 0;
  int64_t vsize = 0, rss = 0;
};

ProcStat proc_stat() {
  ProcStat p;
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return p;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  // fields after ")": state(0) ... utime(11) stime(12) ... starttime(19) vsize(20) rss(21)
  if (f.size() < 22) return p;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / hz;
  std::ifstream st("/proc/stat");
  double btime = 0;
  for (std::string k; st >> k;)
    if (k == "btime") {
      st >> btime;
      break;
    }
  p.start_seconds = btime + std::stod(f[19]) / hz;
  p.vsize = std::stoll(f[20]);
  p.rss = std::stoll(f[21]) * sysconf(_SC_PAGESIZE);
  return p;
}

int open_fds() {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

}  // namespace

std::string render_metrics(ServiceContext& ctx) {
  std::string out = ctx.node().metrics().render_prometheus();
  auto gauge = [&](const char* name, const char* help, auto v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  auto counter = [&](const char* name, const char* help, auto v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  const kv::KvStateMachine::Revisions revs = ctx.sm().revisions();
  gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", revs.current);
  gauge("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.",
        revs.compact < 0 ? 0 : revs.compact);
  const size_t keys = ctx.sm().read([](const kv::MvccStore& m) { return m.record_count(); });
  gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", keys);
  out += fmt::format("# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n"
                     "# TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{}\"}} 1\n",
                     kEtcdVersion);
  out += fmt::format("# HELP etcd_server_id Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.\n"
                     "# TYPE etcd_server_id gauge\netcd_server_id{{server_id=\"{}\"}} 1\n",
                     hex_id(ctx.cluster().me().member_id));
  const ProcStat p = proc_stat();
  counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", p.cpu_seconds);
  gauge("process_open_fds", "Number of open file descriptors.", open_fds());
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.", p.rss);
  gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", p.start_seconds);
  gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.vsize);
  return out;
}

void add_probe_routes(HttpFront& http, ServiceContext& ctx, bool version) {
  ServiceContext* c = &ctx;
  http.Get("/metrics", [c](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(*c), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/health", [c](const httplib::Request&, httplib::Response& res) {
    const bool ok = c->node().status().leader != kNoNode;
    res.status = ok ? 200 : 503;
    res.set_content(ok ? R"({"health":"true"})" : R"({"health":"false"})", "text/plain; charset=utf-8");
  });
  if (version)
    http.Get("/version", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(fmt::format(R"({{"etcdserver":"{}","etcdcluster":"3.4.0"}})", kEtcdVersion),
                      "application/json");
    });
}

namespace {

namespace pb = ::etcdserverpb;

int http_status(grpc::StatusCode c) {  // grpc-gateway's HTTPStatusFromCode
  switch (c) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 408;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::FAILED_PRECONDITION: return 400;
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    default: return 500;
  }
}

void error_body(httplib::Response& res, int code, const std::string& msg) {
  nlohmann::ordered_json j = {{"error", msg}, {"message", msg}, {"code", code}};
  res.status = http_status(static_cast<grpc::StatusCode>(code));
  res.set_content(j.dump(), "application/json");
}

// One gateway route: JSON body -> Req, a unary call, Resp -> JSON.
template <typename Req, typename Resp, typename Call>
void route(HttpFront& http, const std::string& path, Call call) {
  auto handler = [call](const httplib::Request& hreq, httplib::Response& res) {
    Req req;
    if (!hreq.body.empty()) {
      const auto st = google::protobuf::util::JsonStringToMessage(hreq.body, &req);
      if (!st.ok()) return error_body(res, 3, std::string(st.message()));
    }
    Resp resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const grpc::Status st = call(&ctx, req, &resp);
    if (!st.ok()) return error_body(res, st.error_code(), st.error_message());
    google::protobuf::util::JsonPrintOptions opt;
    opt.preserve_proto_field_names = true;
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(resp, &out, opt);
    res.set_content(out, "application/json");
  };
  http.Post("/v3" + path, handler);
  http.Post("/v3beta" + path, handler);
}

}  // namespace

void add_gateway_routes(HttpFront& http, std::shared_ptr<grpc::Channel> channel) {
  auto kv = std::shared_ptr<pb::KV::Stub>(pb::KV::NewStub(channel));
  auto mt = std::shared_ptr<pb::Maintenance::Stub>(pb::Maintenance::NewStub(channel));
  auto cl = std::shared_ptr<pb::Cluster::Stub>(pb::Cluster::NewStub(channel));
#define BALSA_ROUTE(path, stub, Method, Req, Resp)                                                   \
  route<pb::Req, pb::Resp>(http, path, [stub](grpc::ClientContext* c, const pb::Req& q, pb::Resp* r) { \
    return stub->Method(c, q, r);                                                                     \
  })
  BALSA_ROUTE("/kv/range", kv, Range, RangeRequest, RangeResponse);
  BALSA_ROUTE("/kv/put", kv, Put, PutRequest, PutResponse);
  BALSA_ROUTE("/kv/deleterange", kv, DeleteRange, DeleteRangeRequest, DeleteRangeResponse);
  BALSA_ROUTE("/kv/txn", kv, Txn, TxnRequest, TxnResponse);
  BALSA_ROUTE("/kv/compaction", kv, Compact, CompactionRequest, CompactionResponse);
  BALSA_ROUTE("/maintenance/status", mt, Status, StatusRequest, StatusResponse);
  BALSA_ROUTE("/maintenance/hash", mt, HashKV, HashKVRequest, HashKVResponse);
  BALSA_ROUTE("/maintenance/alarm", mt, Alarm, AlarmRequest, AlarmResponse);
  BALSA_ROUTE("/maintenance/defragment", mt, Defragment, DefragmentRequest, DefragmentResponse);
  BALSA_ROUTE("/cluster/member/list", cl, MemberList, MemberListRequest, MemberListResponse);
#undef BALSA_ROUTE
}

}  // namespace balsa::balsad
