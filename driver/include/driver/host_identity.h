// Who this host is, as locks and journals record it: the machine id (stable across
// reboots), the boot id (new at every boot) and the host name.
#pragma once

#include <string>
#include <string_view>

#include "skopos/result.h"

namespace skopos::driver {

struct HostIdentity {
  std::string machine_id;
  std::string boot_id;
  std::string hostname;

  // The machine id is `machine_id` when given, else $MACHINEID (as the first generation
  // read it), else /etc/machine-id. The boot id comes from
  // `boot_id_path` (the kernel's /proc/sys/kernel/random/boot_id), the name from
  // gethostname(). Errors name the file that could not be read or the id that is not a
  // valid name.
  static constexpr const char* kBootIdPath = "/proc/sys/kernel/random/boot_id";
  static Result<HostIdentity> detect(const std::string& machine_id, const std::string& boot_id_path = kBootIdPath);
};

// A name we put into an etcd key: 1 to 128 of [A-Za-z0-9_.-], and not "." or "..".
bool valid_key_name(std::string_view name);

}  // namespace skopos::driver
