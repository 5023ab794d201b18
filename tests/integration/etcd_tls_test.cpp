// The etcd client and the locks over TLS against a real etcd that requires client
// certificates: certificates made here with openssl (a CA, a server certificate for
// IP 127.0.0.1, a client certificate, and a second CA that signed nothing of ours).
// What works with the right files, and what each wrong file does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "driver/etcd_client.h"
#include "driver/lock_service.h"
#include "etcd_server.h"
#include "process.h"
#include "skopos/http_tls.h"

namespace skopos::driver {
namespace {

using namespace std::chrono_literals;
using skopos::testing::run_process;

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = run_process(argv);
  ASSERT_EQ(result.exit_code, 0) << "openssl " << args.front() << ": " << result.err;
}

// Issues `name`.crt/.key signed by ca.crt with the given extensions.
void issue(const std::string& dir, const std::string& name, const std::string& extensions) {
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/" + name + ".key", "-out",
           dir + "/" + name + ".csr", "-subj", "/CN=" + name});
  {
    std::FILE* ext = std::fopen((dir + "/" + name + ".ext").c_str(), "w");
    ASSERT_NE(ext, nullptr);
    std::fputs(extensions.c_str(), ext);
    std::fclose(ext);
  }
  openssl({"x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/ca.crt", "-CAkey", dir + "/ca.key",
           "-CAcreateserial", "-days", "2", "-out", dir + "/" + name + ".crt", "-extfile", dir + "/" + name + ".ext"});
}

class EtcdTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    enable_http_tls();
    dir_ = new std::string("/tmp/skopos-etcd-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(*dir_);
    const std::string& d = *dir_;
    openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key", "-out", d + "/ca.crt", "-days",
             "2", "-subj", "/CN=skopos-test-ca"});
    openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/other-ca.key", "-out",
             d + "/other-ca.crt", "-days", "2", "-subj", "/CN=someone-else"});
    issue(d, "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
    issue(d, "client", "extendedKeyUsage=clientAuth\n");
    skopos::testing::EtcdTls tls{d + "/server.crt", d + "/server.key", d + "/ca.crt"};
    server_ = skopos::testing::EtcdServer::start(1, &tls).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static Result<std::unique_ptr<EtcdClient>, OutsideError> client(const std::string& endpoint, const std::string& ca,
                                                               bool with_cert) {
    EtcdOptions options;
    auto parsed = HttpEndpoint::parse(endpoint);
    EXPECT_TRUE(parsed);
    options.http.endpoints.push_back(*parsed);
    options.http.timeout = 3s;
    options.http.tls.ca_file = *dir_ + "/" + ca;
    if (with_cert) {
      options.http.tls.cert_file = *dir_ + "/client.crt";
      options.http.tls.key_file = *dir_ + "/client.key";
    }
    return EtcdClient::create(std::move(options));
  }

  static skopos::testing::EtcdServer* server_;
  static std::string* dir_;
};
skopos::testing::EtcdServer* EtcdTlsTest::server_ = nullptr;
std::string* EtcdTlsTest::dir_ = nullptr;

TEST_F(EtcdTlsTest, WithTheRightCaAndAClientCertificateEverythingWorksIncludingTheWatch) {
  auto etcd = client(server_->endpoint(), "ca.crt", true);
  ASSERT_TRUE(etcd) << etcd.error().message;
  ASSERT_TRUE((*etcd)->put("tls/key", "value"));
  auto read = (*etcd)->range("tls/key");
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_EQ(read->kvs.size(), 1u);
  EXPECT_EQ(read->kvs[0].value, "value");

  // The watch streams over TLS too: a waiting lock taker is woken by the release.
  auto holder_etcd = client(server_->endpoint(), "ca.crt", true);
  ASSERT_TRUE(holder_etcd);
  LockService holder(**holder_etcd, HostIdentity{"holder", "boot", "h"}, {});
  LockService waiter(**etcd, HostIdentity{"waiter", "boot", "w"}, {});
  ASSERT_TRUE(holder.acquire("reboot", "worker", "REBOOT", std::chrono::steady_clock::now()));
  Result<Acquired, LockError> waited = unexpected(LockError{});
  std::thread thread([&] { waited = waiter.acquire("reboot", "worker", "REBOOT", std::chrono::steady_clock::now() + 20s); });
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(holder.release("reboot", "worker"));
  thread.join();
  ASSERT_TRUE(waited) << waited.error().message;
  EXPECT_FALSE(waited->already_held);
}

TEST_F(EtcdTlsTest, AServerSignedByAnotherCaIsRefusedBeforeAnythingIsSent) {
  auto etcd = client(server_->endpoint(), "other-ca.crt", true);
  ASSERT_TRUE(etcd);
  auto put = (*etcd)->put("tls/untrusted", "x");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().kind, OutsideError::Kind::kRefused) << "nothing was sent, and retrying cannot help";
  EXPECT_NE(put.error().message.find("certificate verify failed"), std::string::npos) << put.error().message;
}

TEST_F(EtcdTlsTest, AHostNameTheCertificateDoesNotNameIsRefused) {
  // The certificate names IP 127.0.0.1 only.
  std::string endpoint = server_->endpoint();
  endpoint.replace(endpoint.find("127.0.0.1"), 9, "localhost");
  auto etcd = client(endpoint, "ca.crt", true);
  ASSERT_TRUE(etcd);
  auto read = (*etcd)->range("tls/key");
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message.find("certificate verify failed"), std::string::npos) << read.error().message;
}

TEST_F(EtcdTlsTest, WithoutAClientCertificateEtcdRefusesTheConnection) {
  auto etcd = client(server_->endpoint(), "ca.crt", false);
  ASSERT_TRUE(etcd);
  auto read = (*etcd)->range("tls/key");
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().kind, OutsideError::Kind::kRefused) << "the server never read it: " << read.error().message;
  EXPECT_NE(read.error().message.find("certificate"), std::string::npos) << read.error().message;
}

TEST_F(EtcdTlsTest, AMissingCertificateFileIsAClearErrorAtCreation) {
  EtcdOptions options;
  options.http.endpoints.push_back(*HttpEndpoint::parse(server_->endpoint()));
  options.http.tls.ca_file = *dir_ + "/no-such-ca.crt";
  auto etcd = EtcdClient::create(std::move(options));
  ASSERT_FALSE(etcd);
  EXPECT_NE(etcd.error().message.find("no-such-ca.crt"), std::string::npos) << etcd.error().message;
}

TEST_F(EtcdTlsTest, TheCliTakesTheTlsFilesAsGlobalOptions) {
  const std::string& d = *dir_;
  auto ok = run_process({SKOPOS_CLI, "lock", "acquire", "reboot", "control", "--etcd-endpoints", server_->endpoint(),
                         "--etcd-cacert", d + "/ca.crt", "--etcd-cert", d + "/client.crt", "--etcd-key",
                         d + "/client.key", "--machine-id", "tls-machine"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto untrusted = run_process({SKOPOS_CLI, "lock", "status", "--etcd-endpoints", server_->endpoint(), "--etcd-cacert",
                                d + "/other-ca.crt", "--etcd-cert", d + "/client.crt", "--etcd-key", d + "/client.key"});
  EXPECT_EQ(untrusted.exit_code, 3);
  EXPECT_LT(untrusted.err.size(), 2000u) << "one clear error, not a retry loop: " << untrusted.err;
  EXPECT_NE(untrusted.err.find("certificate verify failed"), std::string::npos) << untrusted.err;
  auto half = run_process({SKOPOS_CLI, "lock", "status", "--etcd-endpoints", server_->endpoint(), "--etcd-cert",
                           d + "/client.crt"});
  EXPECT_EQ(half.exit_code, 2) << "--etcd-cert without --etcd-key";
}

}  // namespace
}  // namespace skopos::driver
