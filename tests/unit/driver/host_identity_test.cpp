// HostIdentity: where the machine id comes from (flag, $MACHINEID, /etc/machine-id), and
// which names may become part of an etcd key.
#include <gtest/gtest.h>

#include <cstdlib>

#include "driver/host_identity.h"

namespace skopos::driver {
namespace {

class HostIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* saved = std::getenv("MACHINEID")) saved_ = saved;
    ::unsetenv("MACHINEID");
  }
  void TearDown() override {
    if (saved_.empty()) {
      ::unsetenv("MACHINEID");
    } else {
      ::setenv("MACHINEID", saved_.c_str(), 1);
    }
  }
  std::string saved_;
};

TEST_F(HostIdentityTest, TheFlagWinsOverTheEnvironmentWhichWinsOverTheFile) {
  ::setenv("MACHINEID", "from-env", 1);
  auto flagged = HostIdentity::detect("from-flag");
  ASSERT_TRUE(flagged) << flagged.error().message();
  EXPECT_EQ(flagged->machine_id, "from-flag");
  auto env = HostIdentity::detect("");
  ASSERT_TRUE(env);
  EXPECT_EQ(env->machine_id, "from-env");
  EXPECT_EQ(env->boot_id.size(), 36u) << "the kernel's boot id is a UUID";
  EXPECT_FALSE(env->hostname.empty());
}

TEST_F(HostIdentityTest, WithoutFlagOrEnvironmentItIsEtcMachineId) {
  auto identity = HostIdentity::detect("");
  if (!identity) {
    EXPECT_NE(identity.error().message().find("/etc/machine-id"), std::string::npos) << identity.error().message();
    return;
  }
  EXPECT_EQ(identity->machine_id.size(), 32u) << "systemd's machine id: 32 hex digits";
}

TEST_F(HostIdentityTest, AMachineIdThatCannotBeAKeyIsRefusedByName) {
  auto bad = HostIdentity::detect("../etc");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("../etc"), std::string::npos) << bad.error().message();
}

TEST(ValidKeyName, AcceptsIdsAndRefusesSeparatorsAndOddCharacters) {
  for (const char* good : {"worker", "reboot", "3d1219c7c4c5404aaa1f6d2a48adfda4", "a.b-c_d", "X"}) {
    EXPECT_TRUE(valid_key_name(good)) << good;
  }
  for (const char* bad : {"", ".", "..", "a/b", "a b", "tab\t", "\xc3\xa9", "semi;colon"}) {
    EXPECT_FALSE(valid_key_name(bad)) << bad;
  }
  EXPECT_TRUE(valid_key_name(std::string(128, 'a')));
  EXPECT_FALSE(valid_key_name(std::string(129, 'a')));
}

}  // namespace
}  // namespace skopos::driver
