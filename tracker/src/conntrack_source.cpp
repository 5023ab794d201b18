#include "tracker/conntrack_source.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include <cerrno>
#include <cstring>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>

namespace skopos::tracker {

namespace {

IpAddress mapped_v4(std::uint32_t address_be) {
  IpAddress address{};
  address[10] = 0xff;
  address[11] = 0xff;
  std::memcpy(address.data() + 12, &address_be, 4);
  return address;
}

}  // namespace

bool parse_ip_address(const std::string& text, IpAddress& address) {
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    address = mapped_v4(v4.s_addr);
    return true;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(address.data(), &v6, 16);
    return true;
  }
  return false;
}

Result<std::unique_ptr<ConntrackSource>> ConntrackSource::create(unsigned event_buffer_bytes) {
  Handle events(
      nfct_open(CONNTRACK, NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY));
  if (!events) return unexpected(Error::from_errno(errno, "nfct_open events", "conntrack"));
  Handle dump(nfct_open(CONNTRACK, 0));
  if (!dump) return unexpected(Error::from_errno(errno, "nfct_open dump", "conntrack"));
  nfct_handle* const events_handle = events.get();
  nfct_handle* const dump_handle = dump.get();
  std::unique_ptr<ConntrackSource> source(new ConntrackSource(std::move(events), std::move(dump)));
  nfnl_rcvbufsiz(nfct_nfnlh(events_handle), event_buffer_bytes);
  const int fd = nfct_fd(events_handle);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const auto callback = [](nf_conntrack_msg_type type, nf_conntrack* ct, void* context) {
    return ConntrackSource::on_conntrack(static_cast<int>(type), ct, context);
  };
  nfct_callback_register(events_handle, NFCT_T_ALL, callback, source.get());
  nfct_callback_register(dump_handle, NFCT_T_ALL, callback, source.get());
  // Subscribed first, dumped second: an event queued meanwhile is applied after the
  // dump, in order, so the result is the latest state.
  if (auto status = source->resync(); !status) return unexpected(std::move(status).error());
  return source;
}

void ConntrackSource::CloseHandle::operator()(nfct_handle* handle) const {
  if (handle != nullptr) nfct_close(handle);
}

ConntrackSource::~ConntrackSource() = default;

int ConntrackSource::wait_fd() const { return nfct_fd(events_.get()); }

int ConntrackSource::on_conntrack(int type, nf_conntrack* ct, void* context) {
  static_cast<ConntrackSource*>(context)->apply(type, ct);
  return NFCT_CB_CONTINUE;
}

void ConntrackSource::set_flow(std::uint32_t id, const Flow* flow) {
  auto it = flows_.find(id);
  if (it != flows_.end() && it->second.established) {
    auto counted = established_.find({it->second.address, it->second.port});
    if (counted != established_.end() && --counted->second == 0) established_.erase(counted);
  }
  if (flow == nullptr) {
    if (it != flows_.end()) flows_.erase(it);
    return;
  }
  if (flow->established) ++established_[{flow->address, flow->port}];
  if (it != flows_.end()) {
    it->second = *flow;
  } else {
    flows_.emplace(id, *flow);
  }
}

void ConntrackSource::apply(int type, const nf_conntrack* ct) {
  ++stats_.events;
  if (nfct_get_attr_u8(ct, ATTR_L4PROTO) != IPPROTO_TCP) return;
  const std::uint32_t id = nfct_get_attr_u32(ct, ATTR_ID);
  if (type == NFCT_T_DESTROY) {
    set_flow(id, nullptr);
    return;
  }
  // Only flows whose destination was rewritten: traffic into a published port. The
  // kernel sends the status only in events that change it; a flow without one is ours
  // if we already know it.
  const auto known = flows_.find(id);
  if (nfct_attr_is_set(ct, ATTR_STATUS) > 0) {
    if ((nfct_get_attr_u32(ct, ATTR_STATUS) & IPS_DST_NAT) == 0) {
      if (known != flows_.end()) set_flow(id, nullptr);
      return;
    }
  } else if (known == flows_.end()) {
    return;
  }
  Flow flow;
  if (nfct_get_attr_u8(ct, ATTR_L3PROTO) == AF_INET) {
    flow.address = mapped_v4(nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC));
  } else {
    std::memcpy(flow.address.data(), nfct_get_attr(ct, ATTR_REPL_IPV6_SRC), 16);
  }
  flow.port = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
  // Update events carry the state only when it changed; keep the last known one.
  if (nfct_attr_is_set(ct, ATTR_TCP_STATE) > 0) {
    flow.established = nfct_get_attr_u8(ct, ATTR_TCP_STATE) == TCP_CONNTRACK_ESTABLISHED;
  } else if (known != flows_.end()) {
    flow.established = known->second.established;
  }
  set_flow(id, &flow);
}

Result<void> ConntrackSource::resync() {
  flows_.clear();
  established_.clear();
  ++stats_.dumps;
  std::uint32_t family = AF_UNSPEC;
  if (nfct_query(dump_.get(), NFCT_Q_DUMP, &family) < 0) {
    return unexpected(Error::from_errno(errno, "nfct_query dump", "conntrack"));
  }
  return {};
}

void ConntrackSource::discard_queued() {
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(nfct_fd(events_.get()), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EINTR || errno == ENOBUFS))) continue;
    return;
  }
}

Result<void> ConntrackSource::update() {
  for (;;) {
    const int ret = nfct_catch(events_.get());
    if (ret >= 0) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {};
    if (errno == ENOBUFS) {
      // The kernel dropped events: our view is stale in unknown ways. What is still
      // queued is older than the dump we are about to take, and applying it after the
      // dump would undo newer states, so drop it first.
      ++stats_.overflows;
      discard_queued();
      if (auto status = resync(); !status) return status;
      continue;
    }
    return unexpected(Error::from_errno(errno, "nfct_catch", "conntrack events"));
  }
}

std::uint32_t ConntrackSource::established(const IpAddress& address, std::uint16_t port) const {
  if (port != 0) {
    auto it = established_.find({address, port});
    return it == established_.end() ? 0 : it->second;
  }
  std::uint32_t total = 0;
  for (auto it = established_.lower_bound({address, 0}); it != established_.end() && it->first.first == address; ++it) {
    total += it->second;
  }
  return total;
}

ConntrackStats ConntrackSource::stats() const {
  ConntrackStats stats = stats_;
  stats.flows = flows_.size();
  return stats;
}

}  // namespace skopos::tracker
