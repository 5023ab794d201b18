// A bounded HTTP load through one frontend (tools/load-generator, `skopos-load`), run on
// a thread of its own, with every request counted: served, or failed and why.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <thread>

namespace skopos::testing {

class Load {
 public:
  // `requests` requests by 10 workers (every `slow_every`th takes `slow_ms`), at most
  // 240 s; `program` is the skopos-load binary.
  Load(const std::string& program, const std::string& target, long requests, int slow_every = 100, int slow_ms = 2000);
  ~Load();
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

  struct Totals {
    long requests = -1;
    long served = -1;
    long failed = -1;
    std::map<std::string, long> by_instance;
    std::string text;  // the generator's JSON line, or why it did not run
  };
  // Waits for the end; the counts (-1 when the generator printed none).
  Totals wait();
  // Whether it still sends requests (a test checks that its load spans what it proves).
  bool running() const { return running_.load(); }

 private:
  std::string output_;
  std::atomic<bool> running_{true};
  std::thread thread_;
};

}  // namespace skopos::testing
