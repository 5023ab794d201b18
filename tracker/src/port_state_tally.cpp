#include "tracker/port_state_tally.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>
#include <utility>

#include "bit_count.h"

namespace skopos::tracker {

namespace {
constexpr std::size_t kWords = PortStateTally::kPorts / 64;
}  // namespace

// An anonymous mapping reads as zeros and takes memory only where it is written. (A
// value-initialised new[] wrote all 3.5 MiB: a millisecond or more of page faults
// per tally, and that much resident memory for every tally a process keeps.)
PortStateTally::PortStateTally() : in_use_(std::make_unique<std::uint64_t[]>(kWords)) {
  void* table = ::mmap(nullptr, kCells * sizeof(std::uint32_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
  if (table == MAP_FAILED) throw std::bad_alloc();
  cells_ = static_cast<std::uint32_t*>(table);
}

PortStateTally::~PortStateTally() {
  if (cells_ != nullptr) ::munmap(cells_, kCells * sizeof(std::uint32_t));
}

PortStateTally::PortStateTally(PortStateTally&& other) noexcept
    : cells_(std::exchange(other.cells_, nullptr)),
      in_use_(std::move(other.in_use_)),
      states_used_(std::exchange(other.states_used_, 0)) {}

PortStateTally& PortStateTally::operator=(PortStateTally&& other) noexcept {
  if (this != &other) {
    if (cells_ != nullptr) ::munmap(cells_, kCells * sizeof(std::uint32_t));
    cells_ = std::exchange(other.cells_, nullptr);
    in_use_ = std::move(other.in_use_);
    states_used_ = std::exchange(other.states_used_, 0);
  }
  return *this;
}

std::uint32_t PortStateTally::ports_in_use() const {
  std::uint32_t ports = 0;
  for (std::size_t word = 0; word < kWords; ++word) ports += detail::bit_count(in_use_[word]);
  return ports;
}

void PortStateTally::add(const PortStateTally& other) {
  // A state's array at a time, in port order: port by port, every state's cell lies
  // 256 KiB from the last, and the merge cost a quarter of the counting it follows.
  const std::uint64_t* in_use = other.in_use_.get();
  for (std::uint32_t states = other.states_used_; states != 0; states &= states - 1) {
    const std::size_t base = static_cast<std::size_t>(__builtin_ctz(states)) * kPorts;
    std::uint32_t* to = cells_ + base;
    const std::uint32_t* from = other.cells_ + base;
    for (std::size_t word = 0; word < kWords; ++word) {
      if (in_use[word] == 0) continue;
      // Ports in use are adjacent more often than not: the whole word's 64 cells.
      for (std::size_t port = word * 64; port < word * 64 + 64; ++port) to[port] += from[port];
    }
  }
  for (std::size_t word = 0; word < kWords; ++word) in_use_[word] |= in_use[word];
  states_used_ |= other.states_used_;
}

void PortStateTally::clear() {
  // A state's cells lie in one 256 KiB array: with many ports in use, wiping the whole
  // array beats scattered stores; with few, zero just their cells.
  const bool many = ports_in_use() >= kPorts / 32;
  for (std::size_t state = 0; state < kTcpStateSlots; ++state) {
    if ((states_used_ & (1u << state)) == 0) continue;
    std::uint32_t* cells = &cells_[state * kPorts];
    if (many) {
      std::fill_n(cells, kPorts, 0U);
    } else {
      for_each_port([&](std::uint16_t port) { cells[port] = 0; });
    }
  }
  std::fill_n(in_use_.get(), kWords, std::uint64_t{0});
  states_used_ = 0;
}

PortCounts PortStateTally::port_counts(std::uint16_t port) const {
  PortCounts counts{.port = port};
  for (std::uint32_t states = states_used_ & ~1u; states != 0; states &= states - 1) {
    const auto state = static_cast<std::size_t>(__builtin_ctz(states));
    counts.counts[state] = cells_[state * kPorts + port];
  }
  return counts;
}

TallySummary PortStateTally::totals() const {
  // State by state over the ports in use: a busy host's tables leave two or three states
  // in use, so this reads just those cells.
  TallySummary summary;
  const std::uint32_t* listen = &cells_[static_cast<std::size_t>(TcpState::kListen) * kPorts];
  const std::uint32_t* established = &cells_[static_cast<std::size_t>(TcpState::kEstablished) * kPorts];
  for (std::uint32_t states = states_used_ & ~1u; states != 0; states &= states - 1) {
    const auto state = static_cast<std::size_t>(__builtin_ctz(states));
    const std::uint32_t* cells = &cells_[state * kPorts];
    std::uint64_t total = 0;
    for_each_port([&](std::uint16_t port) { total += cells[port]; });
    summary.by_state[state] = total;
    summary.sockets += total;
  }
  if ((states_used_ & (1u << static_cast<unsigned>(TcpState::kListen))) != 0) {
    for_each_port([&](std::uint16_t port) {
      if (listen[port] != 0) summary.established_inbound += established[port];
    });
  }
  summary.established_outbound = summary.count(TcpState::kEstablished) - summary.established_inbound;
  return summary;
}

TallySummary PortStateTally::summarize() const {
  TallySummary summary = totals();
  summary.ports.reserve(ports_in_use());
  for_each_port_counts([&](const PortCounts& port) { summary.ports.push_back(port); });
  return summary;
}

}  // namespace skopos::tracker
