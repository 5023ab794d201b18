// Helpers shared by the lock tests: a "machine" is an EtcdClient plus a LockService with
// its own identity, as each host's driver has.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "driver/etcd_client.h"
#include "driver/lock_service.h"
#include "etcd_server.h"

namespace skopos::driver::testing {

inline std::unique_ptr<EtcdClient> etcd_client(const std::vector<std::string>& endpoints,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  EtcdOptions options;
  for (const std::string& text : endpoints) {
    auto parsed = HttpEndpoint::parse(text);
    EXPECT_TRUE(parsed) << text;
    options.http.endpoints.push_back(*parsed);
  }
  options.http.timeout = timeout;
  options.http.backoff = std::chrono::milliseconds(20);
  auto client = EtcdClient::create(std::move(options));
  EXPECT_TRUE(client);
  return std::move(*client);
}

struct Machine {
  std::unique_ptr<EtcdClient> etcd;
  std::unique_ptr<LockService> locks;
};

// `waiter_lease`: the lease its places in line live on (see LockServiceOptions).
inline Machine machine(const std::vector<std::string>& endpoints, const std::string& prefix, const std::string& id,
                       const std::string& boot_id = "boot-1",
                       std::chrono::milliseconds timeout = std::chrono::seconds(5),
                       std::shared_ptr<const std::atomic<std::int64_t>> waiter_lease = nullptr) {
  Machine m;
  m.etcd = etcd_client(endpoints, timeout);
  LockServiceOptions options;
  options.prefix = prefix;
  options.waiter_lease = std::move(waiter_lease);
  options.operation_timeout = std::chrono::seconds(30);
  options.retry_backoff = std::chrono::milliseconds(20);
  m.locks = std::make_unique<LockService>(*m.etcd, HostIdentity{id, boot_id, "host-" + id}, options);
  return m;
}

inline std::chrono::steady_clock::time_point in(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}

// A test suite with one real etcd member for all its tests, a key prefix of each test's
// own (/t/<test name>) and a plain client for looking at the keys.
class OneEtcdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = skopos::testing::EtcdServer::start().release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    prefix_ = std::string("/t/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    raw_ = etcd_client({server_->endpoint()});
  }

  inline static skopos::testing::EtcdServer* server_ = nullptr;
  std::string prefix_;
  std::unique_ptr<EtcdClient> raw_;
};

}  // namespace skopos::driver::testing
