// The HTTP client without its TLS part: a program that did not call enable_http_tls()
// (this test binary links no OpenSSL) refuses an https:// endpoint at creation, saying
// why, and still serves http:// and unix:// endpoints. The exchanges themselves are
// tested against real servers in tests/integration/http_client_test.cpp.
#include "skopos/http_client.h"

#include <gtest/gtest.h>

namespace skopos {
namespace {

HttpOptions options_for(const std::vector<std::string>& urls) {
  HttpOptions options;
  for (const std::string& url : urls) options.endpoints.push_back(*HttpEndpoint::parse(url));
  return options;
}

TEST(HttpClientWithoutTls, AnHttpsEndpointIsRefusedAtCreationNamingIt) {
  auto client = HttpClient::create(options_for({"http://127.0.0.1:2379", "https://etcd-2:2379"}));
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("https://etcd-2:2379"), std::string::npos) << client.error().message();
  EXPECT_NE(client.error().message().find("built without TLS"), std::string::npos) << client.error().message();
}

TEST(HttpClientWithoutTls, PlainAndUnixEndpointsNeedNoTls) {
  EXPECT_TRUE(HttpClient::create(options_for({"http://127.0.0.1:2379"})));
  EXPECT_TRUE(HttpClient::create(options_for({"unix:///var/run/docker.sock"})));
}

}  // namespace
}  // namespace skopos
