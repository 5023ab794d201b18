#include <cstring>

#include "skopos/result.h"

namespace skopos {

Error Error::from_errno(int code, std::string operation, std::string object) {
  return Error{code, std::move(operation), std::move(object), {}};
}

Error Error::invalid(std::string operation, std::string object, std::string detail) {
  return Error{0, std::move(operation), std::move(object), std::move(detail)};
}

std::string Error::message() const {
  std::string text = operation;
  if (!object.empty()) {
    text += " \"";
    text += object;
    text += '"';
  }
  if (!detail.empty()) {
    text += ": ";
    text += detail;
  }
  if (code != 0) {
    text += detail.empty() ? ": " : " (";
    text += std::strerror(code);
    if (!detail.empty()) text += ')';
  }
  return text;
}

}  // namespace skopos
