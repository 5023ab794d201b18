// TLS for HttpClient (https:// endpoints), linked apart: library skopos_http_tls carries
// OpenSSL, so a program that never speaks https (skopos-tracker, which reaches Docker
// over its Unix socket) neither links nor maps it. A program that does calls
// enable_http_tls() once, before it creates a client with an https endpoint; without it
// HttpClient::create refuses such a client, saying so.
#pragma once

namespace skopos {

// Idempotent and thread-safe.
void enable_http_tls();

}  // namespace skopos
