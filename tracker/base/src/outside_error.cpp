#include "skopos/outside_error.h"

namespace skopos {

OutsideError OutsideError::from_http(std::string system, const HttpError& error, std::string_view prefix) {
  OutsideError out;
  out.system = std::move(system);
  out.kind = error.maybe_applied ? Kind::kUnknownOutcome : Kind::kUnavailable;
  out.message = std::string(prefix) + error.message();
  return out;
}

}  // namespace skopos
