// One client URL of balsad: HTTP/1.1 and gRPC on one port, as etcd serves them.
//
// An accept thread takes each connection; a short-lived thread per connection then
//   plaintext: peeks at the first bytes. "PRI" (the HTTP/2 preface) hands the socket to gRPC
//              (grpc::AddInsecureChannelFromFd: gRPC owns it from then on, no copy, no thread);
//              anything else is served as HTTP/1.1 by `http` on that thread (keep-alive).
//   TLS:       completes the handshake (OpenSSL; client certificates verified per --client-cert-
//              auth), then peeks at the first decrypted bytes. HTTP/1.1 is served over the TLS
//              stream on that thread. gRPC gets one end of a socketpair and the thread relays
//              bytes between it and the TLS stream until either side closes.
// A failed handshake (plaintext on a TLS port, an unverifiable certificate) closes only that
// connection, with one warning naming the peer and OpenSSL's reason.
#pragma once

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <openssl/ssl.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "balsad/config.h"

namespace balsa::balsad {

// httplib's router and handlers, driven over a stream we accepted (plain or TLS).
class HttpFront : public httplib::Server {
 public:
  // Serves requests on `strm` until the client closes, idles 30 s, or 100 requests.
  void serve(httplib::Stream& strm);
};

class ClientListener {
 public:
  // `ssl` null: plaintext. `grpc` and `http` must outlive stop().
  ClientListener(std::string url, HostPort where, SSL_CTX* ssl, grpc::Server* grpc, HttpFront* http);
  ~ClientListener();

  // Binds and starts accepting. Throws std::runtime_error if the address cannot be bound.
  void start();
  // Stops accepting, closes the connections it serves (HTTP, TLS relays) and waits for them.
  void stop();
  int port() const { return port_; }

 private:
  void accept_loop();
  void handle(int fd, std::string peer);
  void serve_plain(int fd, const std::string& peer);
  void serve_tls(int fd, const std::string& peer);
  bool track(int fd);  // false when stopping
  void untrack(int fd);

  const std::string url_;
  const HostPort where_;
  SSL_CTX* const ssl_;
  grpc::Server* const grpc_;
  HttpFront* const http_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::set<int> conns_;  // fds served by a connection thread
  int threads_ = 0;
  bool stopping_ = false;
};

}  // namespace balsa::balsad
