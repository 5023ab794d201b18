// Fence: stops NEW connections to this host's task ports while established ones keep
// flowing, so balancers fail over at once and the drain only waits for what is already
// in flight.
//
// One iptables chain (default SKOPOS) in the filter table (and the same with ip6tables for
// IPv6: FenceOptions::ipv6()), jumped to first from INPUT (host-mode containers),
// FORWARD for DNAT'ed connections only (bridge-mode containers reached through a port
// this host publishes) and OUTPUT for connections addressed to loopback (a balancer on
// this host reaching a published port, which DNAT sends straight out to the bridge).
// Only connections INTO this host are refused: this host's own outbound calls, to any
// port on any other host, never pass a jump. Its rules REJECT a SYN of a new
// connection, with a TCP reset, whose ORIGINAL destination port (conntrack, before DNAT)
// is a fenced port:
//
//   -A SKOPOS -p tcp --syn -m conntrack --ctstate NEW --ctorigdstport 31000 -j REJECT --reject-with tcp-reset
//
// Everything is applied in one `iptables-restore --noflush` transaction: the chain is
// created or flushed and refilled, and only missing jumps are added (a jump found more
// than once is cut back to one), so applying again never accumulates anything. Removal
// deletes exactly the jumps to the chain and the chain itself, again in one transaction.
//
// Optional and OFF by default: rejecting the cloud balancer's health check (a string
// match on its request) to make it take the host out of rotation. A cloud autoscaler
// may read a failing health check as a dead instance and terminate it, as once happened
// to a host holding the reboot lock; fencing the task ports is enough for balancers
// that follow connection resets.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "skopos/result.h"

namespace skopos::driver {

struct HealthCheckFence {
  std::uint16_t port = 0;
  std::string match;  // bytes of the health check request, e.g. "GET /health"
};

struct FenceOptions {
  std::string chain = "SKOPOS";
  std::string iptables_save = "iptables-save";
  std::string iptables_restore = "iptables-restore";
  std::chrono::milliseconds timeout{10000};
  std::optional<HealthCheckFence> health_check;  // off by default: see above
  // Sources whose new connections pass the fence (CIDRs, as parse_cidr() returns them;
  // each family takes its own): the health checkers that must keep seeing a fenced task
  // alive, e.g. the Marathon hosts running Marathon's own HTTP/TCP health checks, which
  // would otherwise fail and make Marathon kill the task mid-wait.
  std::vector<std::string> allow_sources;
  // The OUTPUT jump matches connections addressed to this (as iptables-save prints it).
  std::string loopback = "127.0.0.0/8";

  // The same fence for IPv6: ip6tables-save/-restore, loopback ::1.
  FenceOptions ipv6() const;
};

struct FenceState {
  bool chain_exists = false;
  std::vector<std::string> jumps;              // "-A INPUT -j SKOPOS", as iptables-save prints them
  std::vector<std::string> rules;              // "-A SKOPOS ...", likewise
  std::vector<std::uint16_t> ports;            // the fenced ports read back from the rules
  // Per hook (INPUT, FORWARD, OUTPUT), its first rule as iptables-save prints it: the
  // fence works only while its jump is first (Docker re-inserts its own FORWARD jumps
  // at the top when it restarts or creates a network).
  std::map<std::string, std::string> first_rules;

  bool active() const { return chain_exists || !jumps.empty(); }
};

class Fence {
 public:
  explicit Fence(FenceOptions options = {});

  // What is in place now.
  Result<FenceState> show() const;
  // The iptables-restore input that apply(ports) would run now (for --dry-run).
  Result<std::string> plan(const std::vector<std::uint16_t>& ports) const;
  // Fences exactly `ports` (replacing what the chain held). Atomic.
  Result<FenceState> apply(const std::vector<std::uint16_t>& ports) const;
  // Removes the jumps and the chain; false when there was nothing. Atomic.
  Result<bool> remove() const;
  // Whether `state` fences exactly `ports` with every jump first in its hook.
  bool intact(const FenceState& state, const std::vector<std::uint16_t>& ports) const;

  const FenceOptions& options() const { return options_; }

 private:
  Result<std::string> save() const;
  FenceState parse(const std::string& saved) const;
  Result<void> restore(const std::string& input) const;
  std::string plan_for(const FenceState& state, const std::vector<std::uint16_t>& ports) const;

  FenceOptions options_;
};

// "10.0.0.7", "10.0.0.0/24", "fd00::/64" as iptables-save prints them ("10.0.0.7/32",
// the network address under its prefix); nullopt for anything else.
std::optional<std::string> parse_cidr(std::string_view text);

// The fence of each address family: IPv4 and, when `ipv6`, IPv6. Each family is its own
// all-or-nothing transaction; a failure of either is an error for the caller (a drain
// keeps its journal and resumes later), never a reason to leave a family out.
struct FamilyFence {
  std::string family;  // "IPv4", "IPv6"
  Fence fence;
};
std::vector<FamilyFence> fence_families(const FenceOptions& options, bool ipv6);

// Whether this kernel has IPv6 at all (/proc/net/if_inet6): the default of the IPv6 half,
// decided from the kernel, never from a command that happened to fail.
bool kernel_has_ipv6();

}  // namespace skopos::driver
