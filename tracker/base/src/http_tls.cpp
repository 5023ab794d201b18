#include "skopos/http_tls.h"

#include <boost/asio/ssl.hpp>

#include "http_exchange.h"

namespace skopos {

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using http_detail::error_code;
using http_detail::Exchange;
using http_detail::StreamExchange;

class OpenSslSession final : public http_detail::TlsSession {
 public:
  OpenSslSession(asio::ip::tcp::socket& socket, ssl::context& context, const std::string& host, bool verify)
      : stream_(socket, context) {
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is what it expands to.
    SSL_ctrl(stream_.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
    if (verify) stream_.set_verify_callback(ssl::host_name_verification(host));
  }
  void handshake(std::function<void(const error_code&)> then) override {
    stream_.async_handshake(ssl::stream_base::client, std::move(then));
  }
  void talk(Exchange& exchange) override { exchange.talk(stream_); }
  void converse(StreamExchange& exchange) override { exchange.converse(stream_); }
  void read_some(StreamExchange& exchange, char* chunk, std::size_t size) override {
    exchange.read_some(stream_, chunk, size);
  }

 private:
  ssl::stream<asio::ip::tcp::socket&> stream_;
};

class OpenSslLayer final : public http_detail::TlsLayer {
 public:
  explicit OpenSslLayer(bool verify) : verify_(verify) {}
  ssl::context& context() { return context_; }

  std::unique_ptr<http_detail::TlsSession> session(asio::ip::tcp::socket& socket, const std::string& host) override {
    return std::make_unique<OpenSslSession>(socket, context_, host, verify_);
  }

  // OpenSSL refusing the peer, or the peer refusing us: a failed certificate check in
  // the handshake, or the server's alert that it does not accept our certificate (with
  // TLS 1.3 that alert arrives after the client's handshake, when the request was
  // already written; the server never read it). Retrying cannot help. A connection that
  // merely broke during the handshake is not this: it is reported as a failed connect.
  bool refusal(const error_code& ec) const override {
    if (ec.category() != asio::error::get_ssl_category()) return false;
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
      case SSL_R_CERTIFICATE_VERIFY_FAILED:
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return true;
      default:
        return false;
    }
  }

  bool truncated(const error_code& ec) const override { return ec == ssl::error::stream_truncated; }

 private:
  ssl::context context_{ssl::context::tls_client};
  bool verify_;
};

Result<std::unique_ptr<http_detail::TlsLayer>> make_openssl_layer(const TlsOptions& tls) {
  auto layer = std::make_unique<OpenSslLayer>(tls.verify);
  ssl::context& context = layer->context();
  error_code ec;
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                          ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                      ec);
  if (tls.ca_file.empty()) {
    context.set_default_verify_paths(ec);
  } else {
    context.load_verify_file(tls.ca_file, ec);
    if (ec) return unexpected(Error::invalid("load CA file", tls.ca_file, ec.message()));
  }
  if (!tls.cert_file.empty() || !tls.key_file.empty()) {
    if (tls.cert_file.empty() || tls.key_file.empty()) {
      return unexpected(Error::invalid("tls", "client certificate", "give both the certificate and the key file"));
    }
    context.use_certificate_chain_file(tls.cert_file, ec);
    if (ec) return unexpected(Error::invalid("load client certificate", tls.cert_file, ec.message()));
    context.use_private_key_file(tls.key_file, ssl::context::pem, ec);
    if (ec) return unexpected(Error::invalid("load client key", tls.key_file, ec.message()));
  }
  context.set_verify_mode(tls.verify ? ssl::verify_peer : ssl::verify_none);
  return std::unique_ptr<http_detail::TlsLayer>(std::move(layer));
}

}  // namespace

void enable_http_tls() { http_detail::set_tls_layer_factory(&make_openssl_layer); }

}  // namespace skopos
