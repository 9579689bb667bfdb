#include "balsad/client_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <grpcpp/server_posix.h>
#include <stdexcept>

#include "balsad/tls.h"

namespace balsa::balsad {

namespace {

constexpr int kHandshakeTimeoutMs = 10000;
constexpr int kIdleTimeoutMs = 30000;

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  return r > 0;
}

std::string peer_name(const sockaddr_storage& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// An accepted connection (plain or TLS) as an httplib::Stream.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  bool is_readable() const override {
    return (ssl_ != nullptr && SSL_pending(ssl_) > 0) || wait_fd(fd_, POLLIN, kIdleTimeoutMs);
  }
  bool is_writable() const override { return wait_fd(fd_, POLLOUT, kIdleTimeoutMs); }
  ssize_t read(char* p, size_t n) override {
    if (!is_readable()) return -1;
    if (ssl_ != nullptr) {
      const int r = SSL_read(ssl_, p, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
      return r > 0 ? r : (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
    }
    ssize_t r;
    do r = ::recv(fd_, p, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
  }
  ssize_t write(const char* p, size_t n) override {
    if (ssl_ != nullptr) {
      const int r = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
      return r > 0 ? r : -1;
    }
    ssize_t r;
    do r = ::send(fd_, p, n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { addr(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { addr(false, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  void addr(bool remote, std::string& ip, int& port) const {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    const int r = remote ? ::getpeername(fd_, reinterpret_cast<sockaddr*>(&sa), &len)
                         : ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    ip.clear();
    port = 0;
    if (r != 0) return;
    const std::string s = peer_name(sa);
    const size_t c = s.rfind(':');
    ip = s.substr(0, c);
    port = std::atoi(s.c_str() + c + 1);
  }
  int fd_;
  SSL* ssl_;
};

// Relays bytes both ways between a TLS connection and gRPC's end of a socketpair.
void relay(SSL* ssl, int tcp_fd, int grpc_fd) {
  char buf[64 * 1024];
  while (true) {
    pollfd p[2] = {{tcp_fd, POLLIN, 0}, {grpc_fd, POLLIN, 0}};
    if (SSL_pending(ssl) == 0) {
      const int r = ::poll(p, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return;
    } else {
      p[0].revents = POLLIN;
      ::poll(&p[1], 1, 0);
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) return;
      for (int off = 0; off < n;) {
        const ssize_t w = ::send(grpc_fd, buf + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += static_cast<int>(w);
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(grpc_fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      if (SSL_write(ssl, buf, static_cast<int>(n)) <= 0) return;
    }
  }
}

}  // namespace

void HttpFront::serve(httplib::Stream& strm) {
  bool closed = false;
  for (int left = 100; left > 0 && !closed; --left) {
    if (!strm.is_readable()) break;
    if (!process_request(strm, left == 1, closed, [](httplib::Request&) {})) break;
  }
}

ClientListener::ClientListener(std::string url, HostPort where, SSL_CTX* ssl, grpc::Server* grpc, HttpFront* http)
    : url_(std::move(url)), where_(std::move(where)), ssl_(ssl), grpc_(grpc), http_(http) {}

ClientListener::~ClientListener() { stop(); }

void ClientListener::start() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(where_.port);
  if (const int e = ::getaddrinfo(where_.host.c_str(), port.c_str(), &hints, &res); e != 0)
    throw std::runtime_error("cannot resolve " + url_ + ": " + gai_strerror(e));
  std::string err = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      listen_fd_ = fd;
      break;
    }
    err = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) throw std::runtime_error("cannot listen on " + url_ + ": " + err);
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  const std::string bound = peer_name(sa);
  port_ = std::atoi(bound.c_str() + bound.rfind(':') + 1);
  acceptor_ = std::thread([this] { accept_loop(); });
}

void ClientListener::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
  }
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  std::unique_lock lk(mu_);
  idle_.wait(lk, [&] { return threads_ == 0; });
}

bool ClientListener::track(int fd) {
  std::lock_guard lk(mu_);
  if (stopping_) return false;
  conns_.insert(fd);
  return true;
}

void ClientListener::untrack(int fd) {
  std::lock_guard lk(mu_);
  conns_.erase(fd);
}

void ClientListener::accept_loop() {
  while (true) {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      return;  // shut down
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    {
      std::lock_guard lk(mu_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      ++threads_;
    }
    std::thread([this, fd, peer = peer_name(sa)] {
      handle(fd, peer);
      std::lock_guard lk(mu_);
      if (--threads_ == 0) idle_.notify_all();
    }).detach();
  }
}

void ClientListener::handle(int fd, std::string peer) {
  if (ssl_ != nullptr) serve_tls(fd, peer);
  else serve_plain(fd, peer);
}

void ClientListener::serve_plain(int fd, const std::string& peer) {
  if (!track(fd)) {
    ::close(fd);
    return;
  }
  char head[3];
  ssize_t n = 0;
  while (n < 3) {
    if (!wait_fd(fd, POLLIN, kIdleTimeoutMs)) break;
    n = ::recv(fd, head, sizeof head, MSG_PEEK);
    if (n <= 0) break;
    if (n < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  untrack(fd);
  if (n < 3) {
    ::close(fd);
    return;
  }
  if (std::memcmp(head, "PRI", 3) == 0) {
    if (grpc_ == nullptr) {  // a metrics URL: HTTP/1.1 only
      ::close(fd);
      return;
    }
    set_nonblocking(fd);
    grpc::AddInsecureChannelFromFd(grpc_, fd);  // gRPC owns fd now
    return;
  }
  if (head[0] == 0x16) {  // a TLS ClientHello on a plaintext port
    spdlog::warn("rejected connection from {} on {}: TLS handshake on a plaintext (http://) URL", peer, url_);
    ::close(fd);
    return;
  }
  if (!track(fd)) {
    ::close(fd);
    return;
  }
  ConnStream strm(fd, nullptr);
  http_->serve(strm);
  untrack(fd);
  ::close(fd);
}

void ClientListener::serve_tls(int fd, const std::string& peer) {
  if (!track(fd)) {
    ::close(fd);
    return;
  }
  SSL* ssl = SSL_new(ssl_);
  SSL_set_fd(ssl, fd);
  timeval tv{kHandshakeTimeoutMs / 1000, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ERR_clear_error();
  if (SSL_accept(ssl) != 1) {
    std::string why = ssl_errors();
    if (why.find("http request") != std::string::npos || why.find("wrong version number") != std::string::npos)
      why = "plaintext on a TLS (https://) URL (" + why + ")";
    spdlog::warn("rejected connection from {} on {}: TLS handshake failed: {}", peer, url_, why);
    SSL_free(ssl);
    untrack(fd);
    ::close(fd);
    return;
  }
  timeval none{0, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  char head[3];
  int n = 0;
  while (n < 3) {
    if (SSL_pending(ssl) == 0 && !wait_fd(fd, POLLIN, kIdleTimeoutMs)) break;
    n = SSL_peek(ssl, head, sizeof head);
    if (n <= 0) break;
  }
  if (n >= 3 && std::memcmp(head, "PRI", 3) == 0 && grpc_ != nullptr) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0) {
      set_nonblocking(sp[1]);
      grpc::AddInsecureChannelFromFd(grpc_, sp[1]);  // gRPC owns sp[1]
      relay(ssl, fd, sp[0]);
      ::close(sp[0]);
    }
  } else if (n >= 3 && std::memcmp(head, "PRI", 3) != 0) {
    ConnStream strm(fd, ssl);
    http_->serve(strm);
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  untrack(fd);
  ::close(fd);
}

}  // namespace balsa::balsad
