// ConntrackSource: the host's view of TCP flows DNAT'ed into bridge-mode containers
// ("which published port still carries flows"), from libnetfilter_conntrack: a dump,
// then the event subscription. Counts ESTABLISHED flows per (container address, port),
// where the address and port are the reply direction's source -- the container end
// after DNAT.
//
// A cross-check, never the only truth: conntrack keeps a flow ESTABLISHED until its
// timeout (5 days by default) when the endpoints vanish without a FIN or RST.
//
// Event sockets overflow under load (ENOBUFS): that is counted and answered with a
// fresh dump, so the counts are never left wrong.
//
// Kernel fact: with net.netfilter.nf_conntrack_events=2 (the default since 6.0) a flow
// gets its event cache only if a listener existed when it was created, so flows older
// than the subscription never send events -- not even when they close. Only a dump
// sees them change; callers resync() on an interval (the tracker does).
//
// Not thread-safe: one thread (the tracker's event loop) calls everything.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "skopos/result.h"

struct nfct_handle;
struct nf_conntrack;

namespace skopos::tracker {

// An address in network order, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
using IpAddress = std::array<std::uint8_t, 16>;
// Parses "10.88.0.2" or "fd00::2"; false if neither.
bool parse_ip_address(const std::string& text, IpAddress& address);

struct ConntrackStats {
  std::uint64_t events = 0;     // conntrack events processed
  std::uint64_t overflows = 0;  // ENOBUFS on the event socket
  std::uint64_t dumps = 0;      // full dumps (the first one and one per overflow)
  std::uint64_t flows = 0;      // DNAT'ed TCP flows known now (any state)
};

class ConntrackSource {
 public:
  // Kernel buffer of the event socket: big enough for bursts of thousands of events
  // between two reads.
  static constexpr unsigned kDefaultEventBuffer = 8 * 1024 * 1024;

  // Opens the event subscription (in the calling thread's network namespace) and takes
  // the first dump. Needs CAP_NET_ADMIN and the nf_conntrack module.
  static Result<std::unique_ptr<ConntrackSource>> create(unsigned event_buffer_bytes = kDefaultEventBuffer);
  ~ConntrackSource();
  ConntrackSource(const ConntrackSource&) = delete;
  ConntrackSource& operator=(const ConntrackSource&) = delete;

  // Readable when events are pending.
  int wait_fd() const;
  // Processes pending events without blocking; after an overflow, dumps again.
  Result<void> update();
  // Forgets everything and dumps the table again (after draining nothing: call it only
  // between update()s).
  Result<void> resync();

  // ESTABLISHED DNAT'ed flows whose container end is address:port (port 0: any port).
  std::uint32_t established(const IpAddress& address, std::uint16_t port = 0) const;
  ConntrackStats stats() const;

 private:
  struct Flow {
    IpAddress address{};  // container end
    std::uint16_t port = 0;
    bool established = false;
  };
  using Endpoint = std::pair<IpAddress, std::uint16_t>;

  // Closes a handle (nfct_close): defined where libnetfilter_conntrack is included.
  struct CloseHandle {
    void operator()(nfct_handle* handle) const;
  };
  using Handle = std::unique_ptr<nfct_handle, CloseHandle>;

  ConntrackSource(Handle events, Handle dump) : events_(std::move(events)), dump_(std::move(dump)) {}
  static int on_conntrack(int type, nf_conntrack* ct, void* context);
  void apply(int type, const nf_conntrack* ct);
  void set_flow(std::uint32_t id, const Flow* flow);
  void discard_queued();

  Handle events_;
  Handle dump_;
  std::unordered_map<std::uint32_t, Flow> flows_;  // by conntrack id
  std::map<Endpoint, std::uint32_t> established_;  // container end -> ESTABLISHED flows
  ConntrackStats stats_;
};

}  // namespace skopos::tracker
