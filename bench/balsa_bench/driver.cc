#include "driver.h"

#include <grpcpp/alarm.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace balsa::bench {

namespace pb = ::etcdserverpb;
using Clock = std::chrono::steady_clock;

const char* op_name(Op op) {
  switch (op) {
    case Op::kPut: return "put";
    case Op::kRange: return "range";
    case Op::kTxnPut: return "txn-put";
    case Op::kDelete: return "delete";
  }
  return "?";
}

const char* workload_name(Workload w) {
  switch (w) {
    case Workload::kPut: return "put";
    case Workload::kRange: return "range";
    case Workload::kTxnPut: return "txn-put";
    case Workload::kDelete: return "delete";
    case Workload::kMixed: return "mixed";
    case Workload::kWatch: return "watch";
  }
  return "?";
}

void Result::add_error(int code, const std::string& text) {
  ++failed;
  ++errors[code];
  if (!error_text.count(code)) error_text[code] = text;
}

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

std::chrono::system_clock::time_point wall_in(std::chrono::nanoseconds d) {
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// What every client of a run shares.
struct Shared {
  const Options& opt;
  Workload workload;
  uint64_t total;         // 0: no bound
  uint64_t t0_ns = 0;
  uint64_t end_ns = 0;    // 0: no bound
  std::atomic<uint64_t> next_slot{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> failed{0};
};

class Client;
struct Tag {
  Client* client;
  bool alarm;
};

// One completion queue, its thread, and the clients it serves. Everything but the atomics in
// Shared is touched only by this thread.
struct Worker {
  Worker(Shared& s, uint64_t seed)
      : shared(s),
        // Sequential keys come from the shared slot number (Client::key_index).
        keys(s.opt.key_prefix, s.opt.key_size, s.opt.key_space,
             s.opt.dist == Distribution::kSequential ? Distribution::kUniform : s.opt.dist, s.opt.zipf_theta, seed),
        rng(seed ^ 0x5bd1e995) {}
  Shared& shared;
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Client>> clients;
  KeyGen keys;
  std::mt19937_64 rng;
  Result result;
  int active = 0;
  std::thread thread;
  void run();
};

class Client {
 public:
  Client(Worker& w, std::shared_ptr<grpc::Channel> ch) : w_(w), stub_(pb::KV::NewStub(ch)) {}

  // Takes the next slot: sends now, waits for the slot's time (--rate), or retires.
  void next() {
    Shared& s = w_.shared;
    const uint64_t k = s.next_slot.fetch_add(1, std::memory_order_relaxed);
    const uint64_t now = now_ns();
    if ((s.total != 0 && k >= s.total) || (s.end_ns != 0 && now >= s.end_ns)) {
      --w_.active;
      return;
    }
    slot_ = k;
    if (s.opt.rate > 0) {
      const auto due = s.t0_ns + static_cast<uint64_t>(static_cast<double>(k) * 1e9 / s.opt.rate);
      if (s.end_ns != 0 && due >= s.end_ns) {  // its slot falls after the end of the run
        --w_.active;
        return;
      }
      if (due > now + 20'000) {
        alarm_.Set(&w_.cq, wall_in(std::chrono::nanoseconds(due - now)), &alarm_tag_);
        return;
      }
    }
    send();
  }

  void send() {
    const Options& o = w_.shared.opt;
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(wall_in(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(o.timeout_s))));
    op_ = pick_op();
    switch (op_) {
      case Op::kPut: {
        fill_put(&put_);
        t_send_ = now_ns();
        put_rd_ = stub_->AsyncPut(ctx_.get(), put_, &w_.cq);
        put_rd_->Finish(&put_resp_, &status_, &call_tag_);
        return;
      }
      case Op::kRange: {
        w_.keys.format(key_index(), range_.mutable_key());
        range_.set_serializable(o.serializable);
        t_send_ = now_ns();
        range_rd_ = stub_->AsyncRange(ctx_.get(), range_, &w_.cq);
        range_rd_->Finish(&range_resp_, &status_, &call_tag_);
        return;
      }
      case Op::kTxnPut: {
        txn_.clear_success();
        for (int i = 0; i < o.txn_ops; ++i) fill_put(txn_.add_success()->mutable_request_put());
        t_send_ = now_ns();
        txn_rd_ = stub_->AsyncTxn(ctx_.get(), txn_, &w_.cq);
        txn_rd_->Finish(&txn_resp_, &status_, &call_tag_);
        return;
      }
      case Op::kDelete: {
        w_.keys.format(key_index(), del_.mutable_key());
        t_send_ = now_ns();
        del_rd_ = stub_->AsyncDeleteRange(ctx_.get(), del_, &w_.cq);
        del_rd_->Finish(&del_resp_, &status_, &call_tag_);
        return;
      }
    }
  }

  void done() {
    const uint64_t lat = now_ns() - t_send_;
    Shared& s = w_.shared;
    if (status_.ok()) {
      w_.result.per_op[static_cast<int>(op_)].record(lat);
      ++w_.result.ok;
    } else {
      w_.result.add_error(status_.error_code(), status_.error_message());
      s.failed.fetch_add(1, std::memory_order_relaxed);
    }
    s.completed.fetch_add(1, std::memory_order_relaxed);
    next();
  }

 private:
  Op pick_op() {
    switch (w_.shared.workload) {
      case Workload::kPut:
      case Workload::kWatch: return Op::kPut;
      case Workload::kRange: return Op::kRange;
      case Workload::kTxnPut: return Op::kTxnPut;
      case Workload::kDelete: return Op::kDelete;
      case Workload::kMixed:
        return std::bernoulli_distribution(w_.shared.opt.read_ratio)(w_.rng) ? Op::kRange : Op::kPut;
    }
    return Op::kPut;
  }

  uint64_t key_index() {
    // The sequential preload numbers keys by slot, so the workers together put each key once.
    if (w_.shared.opt.dist == Distribution::kSequential) return slot_ % w_.shared.opt.key_space;
    return w_.keys.next_index();
  }

  void fill_put(pb::PutRequest* p) {
    const Options& o = w_.shared.opt;
    w_.keys.format(key_index(), p->mutable_key());
    std::string* v = p->mutable_value();
    if (v->size() != o.value_size) v->assign(o.value_size, 'v');
    if (w_.shared.workload == Workload::kWatch) {
      const uint64_t t = now_ns();
      std::memcpy(v->data(), &t, sizeof t);
    }
  }

  Worker& w_;
  std::unique_ptr<pb::KV::Stub> stub_;
  Tag call_tag_{this, false};
  Tag alarm_tag_{this, true};
  grpc::Alarm alarm_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  grpc::Status status_;
  Op op_ = Op::kPut;
  uint64_t slot_ = 0;
  uint64_t t_send_ = 0;
  pb::PutRequest put_;
  pb::PutResponse put_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::PutResponse>> put_rd_;
  pb::RangeRequest range_;
  pb::RangeResponse range_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::RangeResponse>> range_rd_;
  pb::TxnRequest txn_;
  pb::TxnResponse txn_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::TxnResponse>> txn_rd_;
  pb::DeleteRangeRequest del_;
  pb::DeleteRangeResponse del_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::DeleteRangeResponse>> del_rd_;
};

void Worker::run() {
  active = static_cast<int>(clients.size());
  for (auto& c : clients) c->next();
  bool shut = false;
  if (active == 0) {
    cq.Shutdown();
    shut = true;
  }
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
    auto* t = static_cast<Tag*>(tag);
    if (t->alarm)
      t->client->send();
    else
      t->client->done();
    if (active == 0 && !shut) {
      cq.Shutdown();
      shut = true;
    }
  }
}

// ---- watch ---------------------------------------------------------------------------------

class Watcher;
struct WatchTag {
  Watcher* w;
  enum Kind { kStart, kWrite, kRead, kFinish } kind;
};

// Watch streams on the key prefix, all on one completion queue and thread.
class WatchSet {
 public:
  WatchSet(const Options& opt, const KeyGen& keys, const std::vector<std::shared_ptr<grpc::Channel>>& chans);
  ~WatchSet();
  // Waits until every stream is created, or one failed, or the dial timeout passed.
  bool wait_created(Result* r);
  uint64_t events() const { return events_.load(); }
  // Cancels every stream, waits for the thread, and merges latencies and errors into *r.
  void stop(Result* r);

 private:
  friend class Watcher;
  void loop();
  const Options& opt_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
  std::atomic<int> created_{0};
  std::atomic<int> finished_{0};
  std::atomic<uint64_t> events_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // guards result_ (written on the loop, read by stop after join)
  Result result_;
  std::thread thread_;
};

class Watcher {
 public:
  Watcher(WatchSet& set, std::shared_ptr<grpc::Channel> ch, const KeyGen& keys) : set_(set), stub_(pb::Watch::NewStub(ch)) {
    auto* c = create_.mutable_create_request();
    c->set_key(keys.prefix());
    c->set_range_end(keys.prefix_end());
  }
  void start() {
    stream_ = stub_->PrepareAsyncWatch(&ctx_, &set_.cq_);
    stream_->StartCall(&start_tag_);
  }
  void cancel() { ctx_.TryCancel(); }
  void on(WatchTag::Kind kind, bool ok) {
    switch (kind) {
      case WatchTag::kStart:
        if (!ok) return finish();
        stream_->Write(create_, &write_tag_);
        return;
      case WatchTag::kWrite:
        if (!ok) return finish();
        stream_->Read(&resp_, &read_tag_);
        return;
      case WatchTag::kRead: {
        if (!ok) return finish();
        if (resp_.created()) set_.created_.fetch_add(1);
        if (resp_.canceled()) {
          std::lock_guard lk(set_.mu_);
          set_.result_.add_error(static_cast<int>(grpc::StatusCode::ABORTED),
                                 "watch canceled by the server: " + resp_.cancel_reason());
        }
        const uint64_t now = now_ns();
        uint64_t n = 0;
        {
          std::lock_guard lk(set_.mu_);
          for (const auto& ev : resp_.events()) {
            if (ev.type() != ::mvccpb::Event::PUT || ev.kv().value().size() < sizeof(uint64_t)) continue;
            uint64_t t = 0;
            std::memcpy(&t, ev.kv().value().data(), sizeof t);
            set_.result_.watch_latency.record(now > t ? now - t : 0);
            ++n;
          }
        }
        set_.events_.fetch_add(n);
        stream_->Read(&resp_, &read_tag_);
        return;
      }
      case WatchTag::kFinish: {
        if (!status_.ok() && !(set_.stopping_.load() && status_.error_code() == grpc::StatusCode::CANCELLED)) {
          std::lock_guard lk(set_.mu_);
          set_.result_.add_error(status_.error_code(),
                                 "watch stream ended: " + (status_.error_message().empty() ? std::string("(no message)")
                                                                                            : status_.error_message()));
        }
        set_.finished_.fetch_add(1);
        return;
      }
    }
  }

 private:
  void finish() { stream_->Finish(&status_, &finish_tag_); }
  WatchSet& set_;
  std::unique_ptr<pb::Watch::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream_;
  pb::WatchRequest create_;
  pb::WatchResponse resp_;
  grpc::Status status_;
  WatchTag start_tag_{this, WatchTag::kStart}, write_tag_{this, WatchTag::kWrite}, read_tag_{this, WatchTag::kRead},
      finish_tag_{this, WatchTag::kFinish};
};

WatchSet::WatchSet(const Options& opt, const KeyGen& keys, const std::vector<std::shared_ptr<grpc::Channel>>& chans)
    : opt_(opt) {
  for (int i = 0; i < opt.watchers; ++i)
    watchers_.push_back(std::make_unique<Watcher>(*this, chans[static_cast<size_t>(i) % chans.size()], keys));
  for (auto& w : watchers_) w->start();
  thread_ = std::thread([this] { loop(); });
}

WatchSet::~WatchSet() {
  if (thread_.joinable()) {
    Result ignored;
    stop(&ignored);
  }
}

void WatchSet::loop() {
  void* tag = nullptr;
  bool ok = false;
  bool shut = false;
  while (cq_.Next(&tag, &ok)) {
    auto* t = static_cast<WatchTag*>(tag);
    t->w->on(t->kind, ok);
    if (!shut && finished_.load() == static_cast<int>(watchers_.size())) {
      cq_.Shutdown();
      shut = true;
    }
  }
}

bool WatchSet::wait_created(Result* r) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(opt_.dial_timeout_s);
  const int n = static_cast<int>(watchers_.size());
  while (created_.load() < n && finished_.load() == 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (created_.load() == n && finished_.load() == 0) return true;
  if (finished_.load() == 0)
    r->add_error(static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED), "watch: streams not created in time");
  return false;
}

void WatchSet::stop(Result* r) {
  stopping_ = true;
  for (auto& w : watchers_) w->cancel();
  thread_.join();
  std::lock_guard lk(mu_);
  r->watch_latency.merge(result_.watch_latency);
  for (const auto& [code, n] : result_.errors) {
    r->errors[code] += n;
    r->failed += n;
    if (!r->error_text.count(code)) r->error_text[code] = result_.error_text[code];
  }
}

// ---- one run -------------------------------------------------------------------------------

Result run_phase(const Options& opt, Workload workload, uint64_t total, double duration_s, bool progress,
                 const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  Shared shared{opt, workload, total};
  const int threads =
      opt.threads > 0 ? opt.threads
                      : std::max(1, std::min<int>(opt.conns, static_cast<int>(std::thread::hardware_concurrency())));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t)
    workers.push_back(std::make_unique<Worker>(shared, opt.seed * 1000003 + static_cast<uint64_t>(t)));
  for (int c = 0; c < opt.clients; ++c) {
    Worker& w = *workers[static_cast<size_t>(c % threads)];
    w.clients.push_back(std::make_unique<Client>(w, channels[static_cast<size_t>(c) % channels.size()]));
  }

  Result out;
  std::unique_ptr<WatchSet> watch;
  if (workload == Workload::kWatch) {
    KeyGen keys(opt.key_prefix, opt.key_size, opt.key_space, Distribution::kUniform, 0, 0);
    watch = std::make_unique<WatchSet>(opt, keys, channels);
    if (!watch->wait_created(&out)) {
      watch->stop(&out);
      out.fatal = "watch streams could not be created";
      return out;
    }
  }

  const double cpu0 = cpu_seconds();
  shared.t0_ns = now_ns();
  if (duration_s > 0) shared.end_ns = shared.t0_ns + static_cast<uint64_t>(duration_s * 1e9);
  for (auto& w : workers) w->thread = std::thread([&w] { w->run(); });

  // Progress: a bar redrawn in place on a terminal, a plain line every few seconds otherwise.
  const bool tty = isatty(STDERR_FILENO) != 0;
  std::atomic<bool> running{true};
  std::thread reporter;
  if (progress) {
    reporter = std::thread([&] {
      const auto period = std::chrono::milliseconds(tty ? 250 : 5000);
      auto next = Clock::now() + period;
      uint64_t last = 0;
      auto last_t = Clock::now();
      while (running.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (Clock::now() < next) continue;
        next += period;
        const uint64_t done = shared.completed.load();
        const auto now = Clock::now();
        const double dt = std::chrono::duration<double>(now - last_t).count();
        const double rate = dt > 0 ? static_cast<double>(done - last) / dt : 0;
        last = done;
        last_t = now;
        const double el = static_cast<double>(now_ns() - shared.t0_ns) / 1e9;
        double frac = total ? static_cast<double>(done) / static_cast<double>(total) : el / duration_s;
        frac = std::min(1.0, frac);
        if (tty) {
          const int width = 30, filled = static_cast<int>(frac * width);
          std::fprintf(stderr, "\r%s [%.*s%*s] %3.0f%% %llu ops %.0f/s %llu errors ", workload_name(workload),
                       filled, "##############################", width - filled, "", frac * 100,
                       static_cast<unsigned long long>(done), rate,
                       static_cast<unsigned long long>(shared.failed.load()));
        } else {
          std::fprintf(stderr, "%s: %.1f s, %llu ops, %.0f ops/s, %llu errors\n", workload_name(workload), el,
                       static_cast<unsigned long long>(done), rate,
                       static_cast<unsigned long long>(shared.failed.load()));
        }
      }
      if (tty) std::fprintf(stderr, "\n");
    });
  }

  for (auto& w : workers) w->thread.join();
  out.elapsed_s = static_cast<double>(now_ns() - shared.t0_ns) / 1e9;
  for (auto& w : workers) {
    for (int i = 0; i < kOpCount; ++i) {
      out.per_op[i].merge(w->result.per_op[i]);
      out.all.merge(w->result.per_op[i]);
    }
    out.ok += w->result.ok;
    for (const auto& [code, n] : w->result.errors) {
      out.errors[code] += n;
      out.failed += n;
      if (!out.error_text.count(code)) out.error_text[code] = w->result.error_text[code];
    }
  }
  if (watch) {
    // Every successful put should reach every watcher; wait a little for the last ones.
    out.watch_expected = out.ok * static_cast<uint64_t>(opt.watchers);
    const auto deadline = Clock::now() + std::chrono::duration<double>(opt.watch_drain_s);
    while (watch->events() < out.watch_expected && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    out.watch_events = watch->events();
    watch->stop(&out);
    if (out.watch_events < out.watch_expected)
      out.add_error(static_cast<int>(grpc::StatusCode::DATA_LOSS),
                    "watch: " + std::to_string(out.watch_expected - out.watch_events) + " events missing");
  }
  out.client_cpu_s = cpu_seconds() - cpu0;
  running = false;
  if (reporter.joinable()) reporter.join();
  return out;
}

std::string target_of(const std::string& ep) {
  if (ep.rfind("http://", 0) == 0) return ep.substr(7);
  return ep;
}

}  // namespace

std::vector<std::shared_ptr<grpc::Channel>> connect(const Options& opt, std::string* error) {
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  for (int i = 0; i < opt.conns; ++i) {
    const std::string& ep = opt.endpoints[static_cast<size_t>(i) % opt.endpoints.size()];
    grpc::ChannelArguments args;
    args.SetInt("balsa_bench.conn", i);  // distinct arguments: a connection of its own
    args.SetMaxReceiveMessageSize(-1);
    chans.push_back(grpc::CreateCustomChannel(target_of(ep), grpc::InsecureChannelCredentials(), args));
  }
  const auto deadline =
      wall_in(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(opt.dial_timeout_s)));
  for (size_t i = 0; i < chans.size(); ++i) {
    if (!chans[i]->WaitForConnected(deadline)) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", opt.dial_timeout_s);
      *error = "cannot connect to " + opt.endpoints[i % opt.endpoints.size()] + " within " + secs + " s";
      return {};
    }
  }
  return chans;
}

Result run(const Options& opt, const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  if (opt.preload) {
    Options pre = opt;
    pre.dist = Distribution::kSequential;
    pre.rate = 0;
    Result p = run_phase(pre, Workload::kPut, opt.key_space, 0, false, channels);
    if (p.failed != 0 || !p.fatal.empty()) {
      p.fatal = p.fatal.empty() ? "preload failed" : p.fatal;
      return p;
    }
  }
  return run_phase(opt, opt.workload, opt.total, opt.duration_s, opt.progress, channels);
}

}  // namespace balsa::bench
