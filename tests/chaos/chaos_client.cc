// balsa-chaos-client: concurrent etcd v3 clients that record a history for balsa-check.
//
// Each worker is one sequential client: it picks an endpoint at random for every operation and
// issues put / get / compare-and-swap (a Txn comparing the value) / delete on a small set of
// register keys, plus puts of unique "ack" keys that are never overwritten. Every operation is
// written as one JSON line (see tests/chaos/README.md for the fields):
//  - a write whose outcome is unknown (deadline, unavailable, any error after sending) is
//    recorded with "ret": null (indeterminate: it may take effect at any later instant, or never);
//  - a read that fails is left out (it has no effect);
//  - an operation the server refused before proposing (INVALID_ARGUMENT etc.) is left out too.
// Times are nanoseconds on this process's steady clock, shared by all workers, so the history's
// real-time order is exact. After the run a final phase reads every register key linearizably
// (with retries) and ranges over the ack keys: an acknowledged ack key missing there is a lost
// acknowledged write, counted in the summary (the final reads also let balsa-check see losses on
// the register keys).
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace pb = ::etcdserverpb;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<std::string> endpoints;
  double duration_s = 30;
  int clients = 8;
  int keys = 16;
  int timeout_ms = 1000;
  double key_lifetime_s = 10;
  int64_t ack_page = 10000;
  bool serializable = false;
  std::string history = "history.jsonl";
  std::string summary;
  uint64_t seed = 1;
};

class Recorder {
 public:
  explicit Recorder(const std::string& path) : out_(path, std::ios::trunc) {
    if (!out_) throw std::runtime_error("cannot open " + path);
  }
  void write(const json& j) {
    const std::string line = j.dump() + "\n";
    std::lock_guard lk(mu_);
    out_ << line;
  }
  void flush() {
    std::lock_guard lk(mu_);
    out_.flush();
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
};

struct Stats {
  std::atomic<uint64_t> ok{0}, indeterminate{0}, failed_reads{0}, refused{0};
  std::mutex mu;
  std::vector<std::string> acked_unique;  // ack keys whose put was acknowledged
};

Clock::time_point g_start;
uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - g_start).count());
}

// Refused before any effect: the request never reached the log, or balsad says it will never
// apply. UNAVAILABLE is otherwise ambiguous (a connection that breaks mid-call gives it too, and
// so does balsad's "request timed out" or "server stopped"). balsad documents three answers as
// definite failures (src/runtime/node.h NodeError, src/balsad/service_context.cc): "no leader"
// (refused at propose), "leader changed" (the entry was overwritten) and "too many requests"
// (dropped by the leader). Leaving them out of the history is itself a claim the checker tests:
// had such a write applied, a later read would show it and the history would not linearize.
bool refused_without_effect(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE: {
      const std::string& m = s.error_message();
      return m.find("failed to connect to all addresses") != std::string::npos || m == "etcdserver: no leader" ||
             m == "etcdserver: leader changed" || m == "etcdserver: too many requests";
    }
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return true;
    default:
      return false;
  }
}

class Worker {
 public:
  Worker(int id, const Options& opt, std::vector<std::unique_ptr<pb::KV::Stub>>* stubs, Recorder* rec, Stats* st)
      : id_(id), opt_(opt), stubs_(stubs), rec_(rec), st_(st), rng_(opt.seed * 1000003 + static_cast<uint64_t>(id)) {}

  void run(Clock::time_point until) {
    while (Clock::now() < until) one();
  }

  // Linearizable read of `key`, retried until it answers or `until`.
  void final_read(const std::string& key, Clock::time_point until) {
    while (Clock::now() < until) {
      if (get(key, /*serializable=*/false)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

 private:
  // Keys live for --key-lifetime seconds, then the clients move to fresh ones (Jepsen's
  // "independent" keys): each key's history stays short, with few indeterminate writes, so the
  // checker's search stays small however long the run.
  std::string key_name(int k) const {
    const auto epoch = static_cast<uint64_t>(static_cast<double>(now_ns()) / 1e9 / opt_.key_lifetime_s);
    return "k" + std::to_string(epoch) + "-" + std::to_string(k);
  }
  size_t pick_ep() { return std::uniform_int_distribution<size_t>(0, stubs_->size() - 1)(rng_); }
  void deadline(grpc::ClientContext* c) const {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(opt_.timeout_ms));
  }
  std::string next_value() { return "c" + std::to_string(id_) + "-" + std::to_string(++seq_); }

  json base(const char* kind, const std::string& key, size_t ep, uint64_t call) const {
    return json{{"client", id_}, {"kind", kind}, {"key", key}, {"ep", ep}, {"call", call}};
  }

  // Records a write: ok -> ret, refused -> dropped, anything else -> indeterminate.
  void finish_write(json j, const grpc::Status& s, uint64_t ret) {
    if (s.ok()) {
      j["ret"] = ret;
      st_->ok++;
    } else if (refused_without_effect(s)) {
      st_->refused++;
      return;
    } else {
      j["ret"] = nullptr;
      j["err"] = std::to_string(static_cast<int>(s.error_code())) + " " + s.error_message();
      st_->indeterminate++;
    }
    rec_->write(j);
  }

  bool get(const std::string& key, bool serializable) {
    const size_t ep = pick_ep();
    pb::RangeRequest req;
    req.set_key(key);
    req.set_serializable(serializable);
    pb::RangeResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    json j = base("get", key, ep, now_ns());
    const grpc::Status s = (*stubs_)[ep]->Range(&ctx, req, &resp);
    const uint64_t ret = now_ns();
    if (!s.ok()) {
      st_->failed_reads++;
      return false;
    }
    j["ret"] = ret;
    j["got"] = resp.kvs_size() > 0 ? json(resp.kvs(0).value()) : json(nullptr);
    // The next compare-and-swap on this key expects what was just read.
    if (resp.kvs_size() > 0) last_seen_[key] = resp.kvs(0).value();
    else last_seen_.erase(key);
    if (serializable) j["serializable"] = true;
    st_->ok++;
    rec_->write(j);
    return true;
  }

  void put(const std::string& key, bool unique) {
    const size_t ep = pick_ep();
    pb::PutRequest req;
    req.set_key(key);
    req.set_value(next_value());
    pb::PutResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    json j = base("put", key, ep, now_ns());
    j["value"] = req.value();
    const grpc::Status s = (*stubs_)[ep]->Put(&ctx, req, &resp);
    const uint64_t ret = now_ns();
    if (s.ok() && unique) {
      std::lock_guard lk(st_->mu);
      st_->acked_unique.push_back(key);
    }
    finish_write(std::move(j), s, ret);
  }

  void del(const std::string& key) {
    const size_t ep = pick_ep();
    pb::DeleteRangeRequest req;
    req.set_key(key);
    pb::DeleteRangeResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    json j = base("delete", key, ep, now_ns());
    const grpc::Status s = (*stubs_)[ep]->DeleteRange(&ctx, req, &resp);
    finish_write(std::move(j), s, now_ns());
  }

  // Compare-and-swap: expect the value this client last read or wrote on the key (or absent).
  void cas(const std::string& key) {
    const size_t ep = pick_ep();
    const auto it = last_seen_.find(key);
    std::optional<std::string> expect;
    if (it != last_seen_.end()) expect = it->second;
    pb::TxnRequest req;
    pb::Compare* c = req.add_compare();
    c->set_key(key);
    if (expect) {
      c->set_target(pb::Compare::VALUE);
      c->set_result(pb::Compare::EQUAL);
      c->set_value(*expect);
    } else {
      c->set_target(pb::Compare::CREATE);
      c->set_result(pb::Compare::EQUAL);
      c->set_create_revision(0);
    }
    pb::PutRequest* p = req.add_success()->mutable_request_put();
    p->set_key(key);
    p->set_value(next_value());
    pb::TxnResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    json j = base("cas", key, ep, now_ns());
    j["value"] = p->value();
    j["expect"] = expect ? json(*expect) : json(nullptr);
    const grpc::Status s = (*stubs_)[ep]->Txn(&ctx, req, &resp);
    const uint64_t ret = now_ns();
    if (s.ok()) {
      j["ok"] = resp.succeeded();
      if (resp.succeeded()) last_seen_[key] = p->value();
      else last_seen_.erase(key);
    }
    finish_write(std::move(j), s, ret);
  }

  void one() {
    const int k = std::uniform_int_distribution<int>(0, opt_.keys - 1)(rng_);
    const std::string key = key_name(k);
    keys_used_.insert(key);
    const int r = std::uniform_int_distribution<int>(0, 99)(rng_);
    if (r < 35) {
      get(key, opt_.serializable);
    } else if (r < 60) {
      put(key, false);
    } else if (r < 80) {
      cas(key);
    } else if (r < 88) {
      del(key);
    } else {
      put("ack/" + std::to_string(id_) + "/" + std::to_string(++unique_), true);
    }
  }

  int id_;
  const Options& opt_;
  std::vector<std::unique_ptr<pb::KV::Stub>>* stubs_;
  Recorder* rec_;
  Stats* st_;
  std::mt19937_64 rng_;
  uint64_t seq_ = 0;
  uint64_t unique_ = 0;
  std::map<std::string, std::string> last_seen_;

 public:
  std::set<std::string> keys_used_;
};

// Every key under ack/ present now (linearizable ranges of 10,000 keys, each retried), or
// nullopt when no member answers. Paged, so the answer never meets a message size limit.
std::optional<std::set<std::string>> range_acks(std::vector<std::unique_ptr<pb::KV::Stub>>& stubs,
                                                Clock::time_point until, int64_t page) {
  std::set<std::string> keys;
  std::string from = "ack/";
  int64_t revision = 0;  // every page at the first page's revision: one consistent view
  while (true) {
    bool answered = false;
    while (!answered && Clock::now() < until) {
      for (auto& stub : stubs) {
        pb::RangeRequest req;
        req.set_key(from);
        req.set_range_end("ack0");  // '/' + 1
        req.set_keys_only(true);
        req.set_limit(page);
        req.set_revision(revision);
        pb::RangeResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        if (!stub->Range(&ctx, req, &resp).ok()) continue;
        if (revision == 0) revision = resp.header().revision();
        for (const auto& kv : resp.kvs()) keys.insert(kv.key());
        if (!resp.more() || resp.kvs_size() == 0) return keys;
        from = resp.kvs(resp.kvs_size() - 1).key() + std::string(1, '\0');
        answered = true;
        break;
      }
      if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!answered) return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::string endpoints;
  CLI::App app{"balsa-chaos-client: concurrent etcd v3 clients recording a history (JSON lines) for balsa-check"};
  app.add_option("--endpoints", endpoints, "host:port,host:port,...")->required();
  app.add_option("--duration", opt.duration_s, "Seconds of load")->capture_default_str();
  app.add_option("--clients", opt.clients, "Concurrent sequential clients")->capture_default_str();
  app.add_option("--keys", opt.keys, "Register keys in use at a time")->capture_default_str();
  app.add_option("--key-lifetime", opt.key_lifetime_s, "Seconds before the clients move to fresh keys")
      ->capture_default_str();
  app.add_option("--timeout-ms", opt.timeout_ms, "Deadline of each request")->capture_default_str();
  app.add_flag("--serializable", opt.serializable,
               "Reads are serializable (served from any member's local state): the negative control, whose "
               "history must NOT be linearizable under faults");
  app.add_option("--history", opt.history, "Output history file (JSON lines)")->capture_default_str();
  app.add_option("--summary", opt.summary, "Output summary file (JSON); default: stdout only");
  app.add_option("--ack-page", opt.ack_page, "Keys per page of the final range over ack/")->capture_default_str();
  app.add_option("--seed", opt.seed, "Seed of the operation mix")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  for (size_t p = 0, q; p <= endpoints.size(); p = q + 1) {
    q = endpoints.find(',', p);
    if (q == std::string::npos) q = endpoints.size();
    if (q > p) opt.endpoints.push_back(endpoints.substr(p, q - p));
  }
  if (opt.endpoints.empty() || opt.clients < 1 || opt.keys < 1) {
    std::fprintf(stderr, "balsa-chaos-client: need endpoints, clients >= 1, keys >= 1\n");
    return 2;
  }

  // One channel per endpoint per client: a client's requests never queue behind another's
  // connection, and a channel that is reconnecting after a fault does not stall the others.
  g_start = Clock::now();
  Recorder rec(opt.history);
  Stats st;
  std::vector<std::vector<std::unique_ptr<pb::KV::Stub>>> stubs(static_cast<size_t>(opt.clients));
  for (auto& per : stubs)
    for (const auto& ep : opt.endpoints) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetMaxReceiveMessageSize(-1);
      per.push_back(pb::KV::NewStub(grpc::CreateCustomChannel(ep, grpc::InsecureChannelCredentials(), args)));
    }
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < opt.clients; ++i)
    workers.push_back(std::make_unique<Worker>(i, opt, &stubs[static_cast<size_t>(i)], &rec, &st));

  const auto until = g_start + std::chrono::milliseconds(static_cast<int64_t>(opt.duration_s * 1000));
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, until] { w->run(until); });
  for (auto& t : threads) t.join();
  const uint64_t load_end = now_ns();

  // Final phase (the harness has healed every fault): a linearizable read of every key used,
  // spread over the workers.
  const auto final_until = Clock::now() + std::chrono::seconds(120);
  std::set<std::string> used;
  for (auto& w : workers) used.insert(w->keys_used_.begin(), w->keys_used_.end());
  std::vector<std::string> all(used.begin(), used.end());
  threads.clear();
  for (size_t w = 0; w < workers.size(); ++w)
    threads.emplace_back([&, w] {
      for (size_t i = w; i < all.size(); i += workers.size()) workers[w]->final_read(all[i], final_until);
    });
  for (auto& t : threads) t.join();
  const auto present = range_acks(stubs[0], final_until, opt.ack_page);
  rec.flush();

  uint64_t lost = 0;
  std::vector<std::string> lost_keys;
  for (const auto& k : st.acked_unique)
    if (present && !present->count(k)) {
      ++lost;
      if (lost_keys.size() < 20) lost_keys.push_back(k);
    }
  json sum{{"ops_ok", st.ok.load()},
           {"ops_indeterminate", st.indeterminate.load()},
           {"reads_failed", st.failed_reads.load()},
           {"refused", st.refused.load()},
           {"acked_unique_writes", st.acked_unique.size()},
           {"final_range_ok", present.has_value()},
           {"lost_acked_writes", lost},
           {"lost_keys", lost_keys},
           {"load_seconds", static_cast<double>(load_end) / 1e9}};
  std::printf("%s\n", sum.dump().c_str());
  if (!opt.summary.empty()) std::ofstream(opt.summary) << sum.dump(2) << "\n";
  if (!present) {
    std::fprintf(stderr, "balsa-chaos-client: no member answered the final range over ack/\n");
    return 3;
  }
  return lost == 0 ? 0 : 1;
}
