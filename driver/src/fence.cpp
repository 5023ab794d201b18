#include "driver/fence.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>

#include "skopos/log.h"
#include "skopos/subprocess.h"

namespace skopos::driver {

namespace {

// The hooks and how each jumps to the chain: only connections INTO this host are ours to
// refuse, never this host's own calls elsewhere.
//   INPUT    delivered to this host (host-network tasks): into it by definition.
//   FORWARD  only DNAT'ed connections: a published port of this host sent on to one of
//            its bridge containers. A container here calling another host's task (Mesos
//            hands out the same port range everywhere) or a public 443 is forwarded
//            without DNAT and passes.
//   OUTPUT   only connections addressed to loopback before DNAT (a balancer on this host
//            reaching a published port, which DNAT sends straight out to the bridge).
constexpr const char* kHooks[] = {"INPUT", "FORWARD", "OUTPUT"};

// What iptables-save prints between "-A <hook>" and "-j <chain>".
std::string hook_match(const char* hook, const FenceOptions& options) {
  const std::string_view name(hook);
  if (name == "OUTPUT") return "-m conntrack --ctorigdst " + options.loopback;
  if (name == "FORWARD") return "-m conntrack --ctstate DNAT";
  return {};
}

std::string jump_spec(const char* hook, const FenceOptions& options) {
  std::string spec = std::string(hook) + " ";
  if (const std::string match = hook_match(hook, options); !match.empty()) spec += match + " ";
  return spec + "-j " + options.chain;
}

}  // namespace

FenceOptions FenceOptions::ipv6() const {
  FenceOptions out = *this;
  out.iptables_save = "ip6tables-save";
  out.iptables_restore = "ip6tables-restore";
  out.loopback = "::1";
  return out;
}

Fence::Fence(FenceOptions options) : options_(std::move(options)) {}

Result<std::string> Fence::save() const {
  auto saved = run_program({options_.iptables_save, "-t", "filter"}, {}, options_.timeout);
  if (!saved) return unexpected(std::move(saved).error());
  if (saved->exit_code != 0) {
    return unexpected(Error::invalid(options_.iptables_save, "-t filter",
                                     "exit " + std::to_string(saved->exit_code) + ": " + saved->err));
  }
  return std::move(saved->out);
}

Result<void> Fence::restore(const std::string& input) const {
  auto restored = run_program({options_.iptables_restore, "--noflush"}, input, options_.timeout);
  if (!restored) return unexpected(std::move(restored).error());
  if (restored->exit_code != 0) {
    // iptables-restore applies all or nothing: a refusal changed nothing.
    return unexpected(Error::invalid(options_.iptables_restore, "--noflush",
                                     "exit " + std::to_string(restored->exit_code) + ": " + restored->err));
  }
  return {};
}

FenceState Fence::parse(const std::string& saved) const {
  FenceState state;
  const std::string declaration = ":" + options_.chain + " ";
  const std::string rule_prefix = "-A " + options_.chain + " ";
  const std::string jump_suffix = "-j " + options_.chain;
  std::istringstream in(saved);
  for (std::string line; std::getline(in, line);) {
    for (const char* hook : kHooks) {
      const std::string prefix = "-A " + std::string(hook) + " ";
      if (line.rfind(prefix, 0) == 0 && state.first_rules.count(hook) == 0) state.first_rules[hook] = line;
    }
    if (line.rfind(declaration, 0) == 0) {
      state.chain_exists = true;
    } else if (line.rfind(rule_prefix, 0) == 0) {
      state.rules.push_back(line);
      const std::string marker = "--ctorigdstport ";
      if (const auto at = line.find(marker); at != std::string::npos) {
        std::uint16_t port = 0;
        const char* begin = line.data() + at + marker.size();
        if (std::from_chars(begin, line.data() + line.size(), port).ec == std::errc{}) state.ports.push_back(port);
      }
    } else if (line.rfind("-A ", 0) == 0 && line.size() >= jump_suffix.size() &&
               line.compare(line.size() - jump_suffix.size(), jump_suffix.size(), jump_suffix) == 0) {
      state.jumps.push_back(line);
    }
  }
  return state;
}

Result<FenceState> Fence::show() const {
  auto saved = save();
  if (!saved) return unexpected(std::move(saved).error());
  return parse(*saved);
}

std::string Fence::plan_for(const FenceState& state, const std::vector<std::uint16_t>& ports) const {
  std::vector<std::uint16_t> unique = ports;
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  std::string out = "*filter\n:" + options_.chain + " - [0:0]\n";  // created, or flushed (--noflush)
  // Allowed sources first: their new connections leave the chain before any REJECT.
  const bool v6 = options_.loopback.find(':') != std::string::npos;
  for (const std::string& source : options_.allow_sources) {
    if ((source.find(':') != std::string::npos) != v6) continue;  // the other family's
    out += "-A " + options_.chain + " -s " + source + " -j RETURN\n";
  }
  for (const std::uint16_t port : unique) {
    out += "-A " + options_.chain + " -p tcp --syn -m conntrack --ctstate NEW --ctorigdstport " + std::to_string(port) +
           " -j REJECT --reject-with tcp-reset\n";
  }
  if (options_.health_check) {
    out += "-A " + options_.chain + " -p tcp --dport " + std::to_string(options_.health_check->port) +
           " -m string --algo bm --string \"" + options_.health_check->match + "\" -j REJECT --reject-with tcp-reset\n";
  }
  // Exactly one jump per hook, first in its chain; any other jump to the chain (an
  // older version's unconditional FORWARD jump, a hand-made one) goes.
  std::map<std::string, int> present;
  for (const std::string& jump : state.jumps) ++present[jump.substr(3)];
  std::set<std::string> wanted;
  for (const char* hook : kHooks) {
    const std::string spec = jump_spec(hook, options_);
    wanted.insert(spec);
    const int count = present.count(spec) > 0 ? present[spec] : 0;
    const auto first = state.first_rules.find(hook);
    const bool first_is_ours = first != state.first_rules.end() && first->second == "-A " + spec;
    if (count > 0 && !first_is_ours) {
      // Pushed down (Docker re-inserts its jumps at the top): take ours out, put it first.
      for (int i = 0; i < count; ++i) out += "-D " + spec + "\n";
      out += "-I " + std::string(hook) + " 1" + spec.substr(std::string(hook).size()) + "\n";
      continue;
    }
    if (count == 0) out += "-I " + std::string(hook) + " 1" + spec.substr(std::string(hook).size()) + "\n";
    for (int extra = 1; extra < count; ++extra) out += "-D " + spec + "\n";
  }
  for (const auto& [spec, count] : present) {
    if (wanted.count(spec) != 0) continue;
    for (int i = 0; i < count; ++i) out += "-D " + spec + "\n";
  }
  return out + "COMMIT\n";
}

Result<std::string> Fence::plan(const std::vector<std::uint16_t>& ports) const {
  auto state = show();
  if (!state) return unexpected(std::move(state).error());
  return plan_for(*state, ports);
}

Result<FenceState> Fence::apply(const std::vector<std::uint16_t>& ports) const {
  auto state = show();
  if (!state) return unexpected(std::move(state).error());
  if (auto applied = restore(plan_for(*state, ports)); !applied) return unexpected(std::move(applied).error());
  auto now = show();
  if (!now) return unexpected(std::move(now).error());
  log_notice("fence '" + options_.chain + "' applied to " + std::to_string(now->ports.size()) + " port(s) (" +
             options_.iptables_restore + ")");
  return std::move(*now);
}

Result<bool> Fence::remove() const {
  auto state = show();
  if (!state) return unexpected(std::move(state).error());
  if (!state->active()) return false;
  std::string input = "*filter\n";
  // Every jump to the chain, whatever its match (also ones we did not add).
  for (const std::string& jump : state->jumps) input += "-D " + jump.substr(3) + "\n";
  if (state->chain_exists) input += ":" + options_.chain + " - [0:0]\n-X " + options_.chain + "\n";
  input += "COMMIT\n";
  if (auto removed = restore(input); !removed) return unexpected(std::move(removed).error());
  log_notice("fence '" + options_.chain + "' removed (" + options_.iptables_restore + ")");
  return true;
}

std::optional<std::string> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  const bool v6 = address.find(':') != std::string::npos;
  unsigned char bytes[16] = {};
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, address.c_str(), bytes) != 1) return std::nullopt;
  const unsigned bits = v6 ? 128 : 32;
  unsigned prefix = bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || prefix > bits) return std::nullopt;
  }
  // The network address, as iptables-save prints it.
  for (unsigned bit = prefix; bit < bits; ++bit) bytes[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  char printed[INET6_ADDRSTRLEN];
  if (::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, printed, sizeof printed) == nullptr) return std::nullopt;
  return std::string(printed) + "/" + std::to_string(prefix);
}

bool kernel_has_ipv6() { return ::access("/proc/net/if_inet6", F_OK) == 0; }

bool Fence::intact(const FenceState& state, const std::vector<std::uint16_t>& ports) const {
  std::vector<std::uint16_t> want = ports;
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  std::vector<std::uint16_t> have = state.ports;
  std::sort(have.begin(), have.end());
  if (!state.chain_exists || have != want || state.jumps.size() != std::size(kHooks)) return false;
  for (const char* hook : kHooks) {
    const auto first = state.first_rules.find(hook);
    if (first == state.first_rules.end() || first->second != "-A " + jump_spec(hook, options_)) return false;
  }
  return true;
}

std::vector<FamilyFence> fence_families(const FenceOptions& options, bool ipv6) {
  // No probing: a family that is asked for is fenced, and any failure of its tools is
  // the caller's error. Dropping a family because one ip6tables-save failed would let
  // IPv6 clients past the fence for the rest of the drain (or leave the IPv6 chain
  // behind on removal) without a word.
  std::vector<FamilyFence> out{{"IPv4", Fence(options)}};
  if (ipv6) out.push_back({"IPv6", Fence(options.ipv6())});
  return out;
}

}  // namespace skopos::driver
