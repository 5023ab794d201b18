// The decoder's contract: no heap allocation per line, on either path, whatever the
// chunking. Every allocation of this test binary is counted while `counting` is set.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "decode_test_support.h"
#include "proc_net_tcp_gen.h"
#include "tracker/proc_net_tcp.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<std::uint64_t> allocations{0};
}  // namespace

// Replacements pair malloc with free, which GCC's heuristic mistakes for a mismatch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace skopos::tracker {
namespace {

// Allocations made while `work` runs.
template <class F>
std::uint64_t allocations_during(F work) {
  allocations = 0;
  counting = true;
  work();
  counting = false;
  return allocations.load();
}

TEST(DecoderAllocation, NoneWhileDecodingOnEitherPath) {
  for (TcpTableFamily family : {TcpTableFamily::kIpv4, TcpTableFamily::kIpv6}) {
    const std::string table = bench::generate_tcp_table(family, 20'000, 5);
    for (std::size_t chunk : {table.size(), std::size_t{4096}}) {
      const auto chunks = testing::chunks_of(table, chunk);
      for (ScanKernel kernel : testing::runnable_kernels()) {
        SCOPED_TRACE(std::string(scan_kernel_name(kernel)) + " " + std::string(tcp_table_name(family)) +
                     " in chunks of " + std::to_string(chunk));
        PortStateTally tally;
        TcpTableCounter counter(tally, kernel);
        EXPECT_EQ(allocations_during([&] {
                    for (std::string_view c : chunks) ASSERT_TRUE(counter.feed(c));
                    ASSERT_TRUE(counter.finish());
                  }),
                  0u);
        EXPECT_EQ(counter.lines(), 20'001u);

        TcpTableDecoder decoder(kernel);
        std::uint64_t inodes = 0;
        EXPECT_EQ(allocations_during([&] {
                    for (std::string_view c : chunks) {
                      ASSERT_TRUE(decoder.feed(c, [&](const TcpSocketRecord& r) { inodes += r.inode; }));
                    }
                    ASSERT_TRUE(decoder.finish());
                  }),
                  0u);
        EXPECT_EQ(decoder.lines(), 20'001u);
        EXPECT_GT(inodes, 0u);
      }
    }
  }
}

}  // namespace
}  // namespace skopos::tracker
