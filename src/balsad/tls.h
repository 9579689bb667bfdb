// TLS for balsad's client port, with etcd's flags and meanings (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth, --auto-tls, --cipher-suites).
//
// The client port terminates TLS itself (OpenSSL), then looks at the first decrypted bytes to
// hand the connection to gRPC or to the HTTP/1.1 server (client_listener.h). ALPN: a client that
// offers http/1.1 (curl, browsers) gets http/1.1; one that offers only h2 (gRPC clients) gets h2.
// The peer port uses gRPC's own TLS (transport/grpc_transport.h) with the --peer-* files.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

namespace balsa::balsad {

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  bool client_cert_auth = false;
  bool auto_tls = false;
  bool enabled() const { return !cert_file.empty() || auto_tls; }
};

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// etcd's --cipher-suites names (Go's crypto/tls names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
// -> OpenSSL's cipher list ("ECDHE-RSA-AES128-GCM-SHA256:..."). Throws std::invalid_argument
// naming an unknown or insecure suite. Empty in, empty out (OpenSSL's defaults).
std::string openssl_cipher_list(const std::string& comma_separated_go_names);

// A server context: TLS 1.2 or later, the certificate chain and key (checked to match), the
// trusted CA (client certificates are required and verified with client_cert_auth), the cipher
// list (TLS 1.2 suites; TLS 1.3's are fixed, as in Go) and ALPN selection. Throws
// std::runtime_error with OpenSSL's reason and the file at fault.
SslCtxPtr make_server_ctx(const TlsFiles& files, const std::string& openssl_ciphers);

// --auto-tls: a self-signed ECDSA P-256 certificate for `hosts` (IPs or DNS names), valid one
// year, written to dir/cert.pem and dir/key.pem (0600) unless both already exist, as etcd does
// under <data-dir>/fixtures/client. Fills files->cert_file/key_file. Throws std::runtime_error.
void ensure_self_signed(const std::string& dir, const std::vector<std::string>& hosts, TlsFiles* files);

// OpenSSL's error queue as text (and cleared).
std::string ssl_errors();

}  // namespace balsa::balsad
