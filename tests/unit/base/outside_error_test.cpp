// The one error of the outside systems' clients: built from an HTTP failure in one place,
// so "may have been applied" means the same for etcd, Mesos, Marathon and Docker.
#include "skopos/outside_error.h"

#include <gtest/gtest.h>

namespace skopos {
namespace {

HttpError http_error(HttpError::Kind kind, bool maybe_applied) {
  HttpError error;
  error.kind = kind;
  error.maybe_applied = maybe_applied;
  error.endpoint = "POST http://m1:5050/machine/down";
  error.detail = "timed out after 10000 ms (receive)";
  return error;
}

TEST(OutsideError, ARequestThatMayHaveArrivedIsAnUnknownOutcome) {
  const OutsideError e = OutsideError::from_http("mesos", http_error(HttpError::Kind::kTimeout, true), "mesos ");
  EXPECT_EQ(e.kind, OutsideError::Kind::kUnknownOutcome);
  EXPECT_TRUE(e.maybe_applied());
  EXPECT_EQ(e.system, "mesos");
  EXPECT_EQ(e.message.rfind("mesos POST http://m1:5050/machine/down: timed out", 0), 0U) << e.message;
  EXPECT_NE(e.message.find("(the request may have been applied)"), std::string::npos) << e.message;
}

TEST(OutsideError, ARequestThatCannotHaveArrivedIsUnavailable) {
  const OutsideError e = OutsideError::from_http("etcd", http_error(HttpError::Kind::kConnect, false), "");
  EXPECT_EQ(e.kind, OutsideError::Kind::kUnavailable);
  EXPECT_FALSE(e.maybe_applied());
  EXPECT_EQ(e.message.find("may have been applied"), std::string::npos);
}

TEST(OutsideError, OnlyA4xxRefusalIsWrongForTheSystemsState) {
  EXPECT_TRUE(OutsideError::answered("marathon", OutsideError::Kind::kRefused, 409, "deployment locked").refused_as_wrong());
  EXPECT_FALSE(OutsideError::answered("marathon", OutsideError::Kind::kRefused, 503, "no leader").refused_as_wrong());
  EXPECT_FALSE(OutsideError::answered("docker", OutsideError::Kind::kNotFound, 404, "no such container").refused_as_wrong())
      << "not found is its own kind";
  EXPECT_FALSE(OutsideError::unavailable("etcd", "down").maybe_applied());
}

}  // namespace
}  // namespace skopos
