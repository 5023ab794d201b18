#include "skopos/outside_error.h"

namespace skopos {

OutsideError OutsideError::from_http(std::string system, const HttpError& error, std::string_view prefix) {
  OutsideError out;
  out.system = std::move(system);
  out.kind = error.maybe_applied ? Kind::kUnknownOutcome : Kind::kUnavailable;
  out.message = std::string(prefix) + error.message();
  return out;
}

const char* outside_error_kind_name(OutsideError::Kind kind) {
  switch (kind) {
    case OutsideError::Kind::kUnavailable: return "unavailable";
    case OutsideError::Kind::kUnknownOutcome: return "unknown-outcome";
    case OutsideError::Kind::kNoLeader: return "no-leader";
    case OutsideError::Kind::kRefused: return "refused";
    case OutsideError::Kind::kNotFound: return "not-found";
    case OutsideError::Kind::kBadResponse: return "bad-response";
    case OutsideError::Kind::kTimedOut: return "timed-out";
  }
  return "unknown";
}

}  // namespace skopos
