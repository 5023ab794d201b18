#include "decode_test_support.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace skopos::tracker::testing {

std::string testdata(std::string_view name) {
  const std::string path = std::string(SKOPOS_TESTDATA_DIR) + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open test data " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<TcpSocketRecord> records_of(std::string_view text, ScanKernel kernel) {
  TcpTableDecoder decoder(kernel);
  std::vector<TcpSocketRecord> records;
  auto status = decoder.feed(text, [&](const TcpSocketRecord& r) { records.push_back(r); });
  EXPECT_TRUE(status) << status.error().message();
  auto done = decoder.finish();
  EXPECT_TRUE(done) << done.error().message();
  return records;
}

}  // namespace skopos::tracker::testing
