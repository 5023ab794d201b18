// The simulators in tools/ (mesos-sim, marathon-sim) as test fixtures: started with a
// cluster description, their endpoints read from the line they print, steered through
// their /__sim/control endpoint, stopped on destruction.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process.h"

namespace skopos::testing {

class Simulator {
 public:
  // Runs `tools_dir`/`program` with the cluster description `spec` (JSON) and waits
  // (bounded) for its endpoints. Aborts the test binary if it does not start.
  static std::unique_ptr<Simulator> start(const std::string& tools_dir, const std::string& program,
                                          const std::string& spec);
  ~Simulator();

  // The first line it printed, as given: {"masters": [...], "agents": {...}} etc.
  const std::string& endpoints_json() const { return endpoints_; }
  // The string values of a top-level array field ("masters"), or of an object field
  // ("agents": id -> URL).
  std::vector<std::string> list(const std::string& field) const;
  std::map<std::string, std::string> map(const std::string& field) const;

  // POST /__sim/control on `endpoint` with `json`; the reply body ("" on failure).
  static std::string control(const std::string& endpoint, const std::string& json);
  // GET `path` on `endpoint`, or POST `body` there (as application/json); the reply body.
  static std::string get(const std::string& endpoint, const std::string& path);
  static std::string post(const std::string& endpoint, const std::string& path, const std::string& body);
  static std::string request(const std::string& endpoint, const std::string& method, const std::string& path,
                             const std::string& body);

 private:
  Simulator() = default;
  std::string spec_path_;
  std::string endpoints_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace skopos::testing
