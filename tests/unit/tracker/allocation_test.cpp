// The decoder's contract: no heap allocation per line, on either path, whatever the
// chunking. This binary links skopos_allocation_counter, which counts every allocation.
#include <gtest/gtest.h>

#include "allocation_counter.h"
#include "decode_test_support.h"
#include "proc_net_tcp_gen.h"
#include "tracker/proc_net_tcp.h"

namespace skopos::tracker {
namespace {

using bench::allocations_during;

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
