#include "driver/host_identity.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <limits.h>

namespace skopos::driver {

namespace {

// The first line of a one-line file, trimmed.
Result<std::string> read_line(const char* path) {
  std::ifstream in(path);
  if (!in) return unexpected(Error::from_errno(errno, "open", path));
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
  if (line.empty()) return unexpected(Error::invalid("read", path, "the file is empty"));
  return line;
}

}  // namespace

bool valid_key_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<HostIdentity> HostIdentity::detect(const std::string& machine_id, const std::string& boot_id_path) {
  HostIdentity identity;
  if (!machine_id.empty()) {
    identity.machine_id = machine_id;
  } else if (const char* env = std::getenv("MACHINEID"); env != nullptr && *env != '\0') {
    identity.machine_id = env;
  } else {
    auto line = read_line("/etc/machine-id");
    if (!line) return unexpected(std::move(line).error());
    identity.machine_id = std::move(*line);
  }
  if (!valid_key_name(identity.machine_id)) {
    return unexpected(Error::invalid("machine id", identity.machine_id,
                                     "must be 1-128 of letters, digits, '_', '.' and '-'"));
  }
  auto boot = read_line(boot_id_path.c_str());
  if (!boot) return unexpected(std::move(boot).error());
  identity.boot_id = std::move(*boot);
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return unexpected(Error::from_errno(errno, "gethostname", ""));
  identity.hostname = name;
  return identity;
}

}  // namespace skopos::driver
