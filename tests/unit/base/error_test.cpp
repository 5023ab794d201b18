// Error messages name the operation, the object and what went wrong, in that order.
#include <gtest/gtest.h>

#include <cerrno>

#include "skopos/result.h"

namespace skopos {
namespace {

TEST(Error, MessagesNameOperationObjectAndCause) {
  EXPECT_EQ(Error::from_errno(ENOENT, "open", "/proc/1/net/tcp").message(),
            "open \"/proc/1/net/tcp\": No such file or directory");
  EXPECT_EQ(Error::invalid("parse", "/proc/net/tcp line 3", "bad state 'ZZ'").message(),
            "parse \"/proc/net/tcp line 3\": bad state 'ZZ'");
  Error both = Error::from_errno(EACCES, "read", "journal");
  both.detail = "while resuming";
  EXPECT_EQ(both.message(), "read \"journal\": while resuming (Permission denied)");
  EXPECT_EQ(Error::invalid("lock", "", "held").message(), "lock: held");
}

}  // namespace
}  // namespace skopos
