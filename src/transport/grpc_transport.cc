// GrpcTransport: the facade and the lifecycle (server, start, stop, stats). The sending half
// lives in grpc_sender.cc, the receiving half in grpc_receiver.cc.
#include "transport/grpc_transport.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/assert.h"
#include "transport/grpc_transport_impl.h"

namespace balsa {

namespace grpc_internal {
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("transport: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace grpc_internal

using grpc_internal::read_file;

class GrpcTransport::Impl {
 public:
  explicit Impl(GrpcTransportOptions o) : s_(std::move(o)), sender_(s_), receiver_(s_) {
    const auto& opt = s_.opt;
    BALSA_ASSERT(opt.self != kNoNode, "transport needs a local node id");
    BALSA_ASSERT(opt.max_batch_bytes > 0 && opt.max_batch_bytes + 4096 <= opt.max_grpc_message_bytes,
                 "max_batch_bytes {} must leave room under max_grpc_message_bytes {}",
                 opt.max_batch_bytes, opt.max_grpc_message_bytes);
    BALSA_ASSERT(opt.snapshot.chunk_bytes > 0 && opt.snapshot.chunk_bytes + 4096 <= opt.max_grpc_message_bytes,
                 "snapshot chunk_bytes {} must leave room under max_grpc_message_bytes {}",
                 opt.snapshot.chunk_bytes, opt.max_grpc_message_bytes);
    BALSA_ASSERT(opt.backoff_initial.count() > 0 && opt.backoff_max >= opt.backoff_initial, "bad backoff");
  }
  ~Impl() { stop(); }

  void start(Handler handler);
  void add_peer(NodeId id, std::string address) { sender_.add_peer(id, std::move(address)); }
  void remove_peer(NodeId id) { sender_.remove_peer(id); }
  void send(std::vector<Message> msgs) { sender_.send(std::move(msgs)); }
  void stop();
  void set_feedback(DeliveryFeedback f) {
    std::lock_guard lk(mu_);
    BALSA_ASSERT(!started_, "set_feedback after start");
    s_.feedback = std::move(f);
  }
  void set_snapshots(SnapshotEndpoints e) {
    std::lock_guard lk(mu_);
    BALSA_ASSERT(!started_, "set_snapshots after start");
    s_.snapshots = std::move(e);
  }
  int listen_port() const { return port_.load(); }
  TransportStats stats() const {
    TransportStats s;
    sender_.fill_stats(&s);
    receiver_.fill_stats(&s);
    return s;
  }

 private:
  std::shared_ptr<grpc::ChannelCredentials> make_channel_credentials() const;

  grpc_internal::Shared s_;
  grpc_internal::GrpcSender sender_;
  grpc_internal::GrpcReceiver receiver_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> port_{0};
  mutable std::mutex mu_;
  bool started_ = false;  // guarded by mu_
  bool stopped_ = false;  // guarded by mu_
};

void GrpcTransport::Impl::start(Handler handler) {
  std::unique_lock lk(mu_);
  const GrpcTransportOptions& opt = s_.opt;
  BALSA_ASSERT(!started_ && !stopped_, "GrpcTransport::start called twice or after stop");
  s_.handler = std::move(handler);

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (opt.tls) {
    grpc::SslServerCredentialsOptions ssl(
        opt.tls->require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_root_certs = read_file(opt.tls->ca_file);
    ssl.pem_key_cert_pairs.push_back({read_file(opt.tls->key_file), read_file(opt.tls->cert_file)});
    creds = grpc::SslServerCredentials(ssl);
  }
  s_.channel_creds = make_channel_credentials();  // read TLS files once; failures throw here
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opt.listen_address, creds, &port);
  builder.RegisterService(&receiver_);
  builder.RegisterService(receiver_.snapshot_service());
  builder.SetMaxReceiveMessageSize(static_cast<int>(opt.max_grpc_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(opt.max_grpc_message_bytes));
  // A second server on the same port must fail, not silently share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Accept the clients' keepalive pings (every 10 s) instead of answering with GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  server_ = builder.BuildAndStart();
  port_ = port;
  if (!server_ || port == 0) {
    server_.reset();
    throw std::runtime_error("transport: cannot listen on " + opt.listen_address);
  }
  started_ = true;
  spdlog::info("transport: node {} listening on {} (port {}, cluster {:#x}, {})", opt.self.value,
               opt.listen_address, port, opt.cluster_id, opt.tls ? "tls" : "insecure");
  sender_.start();
}

void GrpcTransport::Impl::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  sender_.stop();
  if (server_) {
    // Deadline now: cancel the incoming streams at once. Shutdown returns after every handler
    // has returned; the gate makes "no callback after stop()" explicit regardless.
    server_->Shutdown(std::chrono::system_clock::now());
    // Reactors call back into the receiver until OnDone; wait for the last one.
    receiver_.wait_reactors();
  }
  s_.gate.close();
  server_.reset();
  spdlog::info("transport: node {} stopped", s_.opt.self.value);
}

std::shared_ptr<grpc::ChannelCredentials> GrpcTransport::Impl::make_channel_credentials() const {
  const auto& opt = s_.opt;
  if (!opt.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_file(opt.tls->ca_file);
  ssl.pem_private_key = read_file(opt.tls->key_file);
  ssl.pem_cert_chain = read_file(opt.tls->cert_file);
  return grpc::SslCredentials(ssl);
}

// ---------------------------------------------------------------------------------------------
// Facade

GrpcTransport::GrpcTransport(GrpcTransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
GrpcTransport::~GrpcTransport() { stop(); }
void GrpcTransport::start(Handler on_message) { impl_->start(std::move(on_message)); }
void GrpcTransport::add_peer(NodeId id, std::string address) { impl_->add_peer(id, std::move(address)); }
void GrpcTransport::remove_peer(NodeId id) { impl_->remove_peer(id); }
void GrpcTransport::send(std::vector<Message> msgs) { impl_->send(std::move(msgs)); }
void GrpcTransport::stop() { impl_->stop(); }
void GrpcTransport::set_feedback(DeliveryFeedback feedback) { impl_->set_feedback(std::move(feedback)); }
bool GrpcTransport::set_snapshots(SnapshotEndpoints endpoints) {
  impl_->set_snapshots(std::move(endpoints));
  return true;
}
int GrpcTransport::listen_port() const { return impl_->listen_port(); }
TransportStats GrpcTransport::stats() const { return impl_->stats(); }

}  // namespace balsa
