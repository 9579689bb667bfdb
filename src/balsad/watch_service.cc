#include "balsad/watch_service.h"

#include <cctype>
#include <mutex>
#include <utility>

namespace balsa::balsad {
namespace pb = ::etcdserverpb;

std::optional<std::chrono::milliseconds> parse_go_duration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  if (s == "0") return std::chrono::milliseconds(0);
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
    if (j == i) return std::nullopt;
    double v = 0;
    try {
      v = std::stod(s.substr(i, j - i));
    } catch (...) {
      return std::nullopt;
    }
    size_t k = j;
    while (k < s.size() && std::isalpha(static_cast<unsigned char>(s[k]))) ++k;
    const std::string unit = s.substr(j, k - j);
    double scale = 0;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60 * 1000;
    else if (unit == "h") scale = 3600 * 1000;
    else if (unit == "us" || unit == "µs") scale = 0.001;
    else if (unit == "ns") scale = 0.000001;
    else return std::nullopt;
    total_ms += v * scale;
    i = k;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

namespace {

kv::WatchSpec to_spec(const pb::WatchCreateRequest& c) {
  kv::WatchSpec s;
  // v3rpc recvLoop: an empty key watches "\0"; range_end "\0" means every key >= key.
  s.key = c.key().empty() ? std::string(1, '\0') : c.key();
  s.range_end = c.range_end();
  s.start_revision = c.start_revision();
  s.prev_kv = c.prev_kv();
  s.progress_notify = c.progress_notify();
  s.fragment = c.fragment();
  s.watch_id = c.watch_id();
  for (int f : c.filters()) {
    if (f == pb::WatchCreateRequest::NOPUT) s.no_put = true;
    if (f == pb::WatchCreateRequest::NODELETE) s.no_delete = true;
  }
  return s;
}

class WatchReactor final : public grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse> {
 public:
  // What the hub's ready callback holds: it outlives the reactor, which detaches in OnDone.
  struct Link {
    std::mutex mu;
    WatchReactor* r = nullptr;
  };

  WatchReactor(ServiceContext& s, kv::WatchHub& hub, size_t max_queued_bytes)
      : s_(s), max_queued_(max_queued_bytes), link_(std::make_shared<Link>()) {
    link_->r = this;
    stream_ = hub.open([link = link_] {
      std::lock_guard l(link->mu);
      if (link->r != nullptr) link->r->on_ready();
    });
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // half-close: etcd keeps the stream until the client cancels it
    handle(req_);
    std::lock_guard l(mu_);
    if (stream_->queued_bytes() > max_queued_) {
      read_paused_ = true;  // the client is not reading: stop taking requests
    } else {
      StartRead(&req_);
    }
    write_next();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard l(mu_);
    writing_ = false;
    if (!ok) {
      finish({grpc::StatusCode::UNAVAILABLE, "balsad: watch stream broken"});
      return;
    }
    if (read_paused_ && stream_->queued_bytes() <= max_queued_ / 2) {
      read_paused_ = false;
      StartRead(&req_);
    }
    write_next();
  }

  void OnCancel() override {
    std::lock_guard l(mu_);
    finish({grpc::StatusCode::CANCELLED, "etcdserver: watch canceled"});
  }

  void OnDone() override {
    {
      std::lock_guard l(link_->mu);
      link_->r = nullptr;
    }
    stream_->close();
    delete this;
  }

 private:
  void on_ready() {
    std::lock_guard l(mu_);
    write_next();
  }

  void handle(const pb::WatchRequest& req) {
    switch (req.request_union_case()) {
      case pb::WatchRequest::kCreateRequest:
        stream_->create(to_spec(req.create_request()));
        break;
      case pb::WatchRequest::kCancelRequest:
        stream_->cancel(req.cancel_request().watch_id());  // unknown ids: no reply, as etcd
        break;
      case pb::WatchRequest::kProgressRequest:
        stream_->request_progress();
        break;
      case pb::WatchRequest::REQUEST_UNION_NOT_SET:
        break;
    }
  }

  // Caller holds mu_.
  void write_next() {
    if (writing_ || finished_) return;
    std::optional<kv::WatchMessage> m = stream_->next();
    if (!m) return;
    out_.Clear();
    s_.fill_header(out_.mutable_header(), m->revision);
    out_.set_watch_id(m->watch_id);
    switch (m->kind) {
      case kv::WatchMessage::Kind::kCreated:
        out_.set_created(true);
        out_.set_canceled(m->canceled);
        out_.set_cancel_reason(m->cancel_reason);
        break;
      case kv::WatchMessage::Kind::kEvents:
        out_.set_fragment(m->fragment);
        for (auto& e : m->events) out_.add_events()->Swap(&e);
        break;
      case kv::WatchMessage::Kind::kProgress:
        break;
      case kv::WatchMessage::Kind::kCanceled:
        out_.set_canceled(true);
        out_.set_compact_revision(m->compact_revision);
        out_.set_cancel_reason(m->cancel_reason);
        break;
    }
    writing_ = true;
    StartWrite(&out_);
  }

  void finish(const grpc::Status& st) {
    if (finished_) return;
    finished_ = true;
    Finish(st);
  }

  ServiceContext& s_;
  const size_t max_queued_;
  std::shared_ptr<Link> link_;
  std::unique_ptr<kv::WatchStream> stream_;
  std::mutex mu_;
  pb::WatchRequest req_;
  pb::WatchResponse out_;
  bool writing_ = false;
  bool finished_ = false;
  bool read_paused_ = false;
};

}  // namespace

WatchService::WatchService(ServiceContext& s, kv::WatchHub& hub, std::chrono::milliseconds progress_interval)
    : s_(s), hub_(hub), runner_(std::make_unique<kv::WatchHubRunner>(hub, progress_interval)) {}

WatchService::~WatchService() = default;

grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse>* WatchService::Watch(grpc::CallbackServerContext*) {
  return new WatchReactor(s_, hub_, hub_.options().max_queued_bytes);
}

}  // namespace balsa::balsad
