// What tests of our systemd units share: `systemd-analyze verify` of a unit file in the
// repository (its ExecStart pointed at the binary we built, which verify requires to
// exist), and a NOTIFY_SOCKET to receive sd_notify datagrams as systemd would.
#pragma once

#include <chrono>
#include <string>

#include "process.h"
#include "skopos/unique_fd.h"

namespace skopos::testing {

struct VerifiedUnit {
  std::string text;       // the unit as in the repository
  ProcessResult verify;   // systemd-analyze verify's outcome
};

// Verifies `unit_path` with `installed` (e.g. "/usr/local/bin/skopos") replaced by
// `binary` in its ExecStart line.
VerifiedUnit verify_unit(const std::string& unit_path, const std::string& installed, const std::string& binary);

// A datagram socket bound at `path` where a daemon sends its notifications.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path);
  ~NotifySocket();
  const std::string& path() const { return path_; }
  // The next datagram, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout);

 private:
  std::string path_;
  UniqueFd fd_;
};

}  // namespace skopos::testing
