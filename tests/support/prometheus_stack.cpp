#include "prometheus_stack.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

namespace skopos::testing {

namespace {

using Clock = std::chrono::steady_clock;

void replace_file(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".new";
  std::ofstream(temporary) << text;
  std::filesystem::rename(temporary, path);  // the scraper never sees half a file
}

bool wait_for(std::chrono::seconds limit, const std::function<bool()>& ready) {
  for (const auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ready();
}

}  // namespace

std::unique_ptr<PrometheusStack> PrometheusStack::start(const std::string& rules) {
  for (const char* binary : {"/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager", "/usr/bin/python3"}) {
    if (::access(binary, X_OK) != 0) {
      std::fprintf(stderr, "PrometheusStack: %s is missing (tools/install-deps.sh installs it)\n", binary);
      std::abort();
    }
  }
  std::unique_ptr<PrometheusStack> stack(new PrometheusStack());
  stack->dir_ = "/tmp/skopos-prometheus-" + std::to_string(::getpid()) + "-" +
                std::to_string(Clock::now().time_since_epoch().count());
  const std::string& dir = stack->dir_;
  std::filesystem::create_directories(dir + "/target");
  std::filesystem::create_directories(dir + "/prometheus");
  std::filesystem::create_directories(dir + "/alertmanager");
  stack->set_metrics("");
  // Ports chosen free can be taken before the servers bind them (tests run in parallel):
  // a stack that does not come up is started again on new ports, a few times.
  for (int attempt = 1;; ++attempt) {
    stack->target_port_ = free_loopback_port();
    stack->prometheus_port_ = free_loopback_port();
    stack->alertmanager_port_ = free_loopback_port();
    replace_file(dir + "/alertmanager.yml",
               "route:\n  receiver: nobody\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n"
               "receivers:\n  - name: nobody\n");
    replace_file(dir + "/rules.yml", "groups:\n  - name: test\n    interval: 1s\n    rules:\n" + rules);
    replace_file(dir + "/prometheus.yml",
               "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
               "rule_files: ['" + dir + "/rules.yml']\n"
               "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:" +
                   std::to_string(stack->alertmanager_port_) + "']\n"
               "scrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['127.0.0.1:" +
                   std::to_string(stack->target_port_) + "']\n");

    stack->target_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir + "/target",
                                 std::to_string(stack->target_port_)},
        dir + "/target.log");
    stack->alertmanager_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/bin/prometheus-alertmanager", "--config.file=" + dir + "/alertmanager.yml",
                                 "--storage.path=" + dir + "/alertmanager",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(stack->alertmanager_port_),
                                 "--cluster.listen-address=", "--log.level=warn"},
        dir + "/alertmanager.log");
    stack->prometheus_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                                 "--storage.tsdb.path=" + dir + "/prometheus",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(stack->prometheus_port_),
                                 "--log.level=warn"},
        dir + "/prometheus.log");
    const bool up = wait_for(std::chrono::seconds(30), [&] {
      return loopback_http(stack->prometheus_port_, "GET", "/-/ready").find("Ready") != std::string::npos &&
             loopback_http(stack->alertmanager_port_, "GET", "/-/ready").find("OK") != std::string::npos &&
             !loopback_http(stack->target_port_, "GET", "/metrics").empty();
    });
    if (up) break;
    std::fprintf(stderr, "PrometheusStack: not ready within 30 s (try %d; logs in %s)\n", attempt, dir.c_str());
    for (auto* process : {&stack->prometheus_, &stack->alertmanager_, &stack->target_}) {
      if (*process) (*process)->stop(SIGKILL, std::chrono::seconds(10));
      process->reset();
    }
    if (attempt == 3) std::abort();  // a test failure, loudly
  }
  return stack;
}

PrometheusStack::~PrometheusStack() {
  for (auto* process : {&prometheus_, &alertmanager_, &target_}) {
    if (*process) (*process)->stop(SIGTERM, std::chrono::seconds(10));
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void PrometheusStack::set_metrics(const std::string& text) {
  replace_file(dir_ + "/target/metrics", text.empty() ? "# nothing yet\n" : text);
}

bool PrometheusStack::wait_alert(const std::string& alertname, bool active, std::chrono::seconds limit) {
  return wait_for(limit, [&] {
    const std::string alerts = loopback_http(alertmanager_port_, "GET", "/api/v2/alerts?active=true");
    const bool listed = alerts.find("\"alertname\":\"" + alertname + "\"") != std::string::npos;
    return active ? listed && alerts.find("\"state\":\"active\"") != std::string::npos : !listed;
  });
}

bool PrometheusStack::wait_prometheus_alert(const std::string& alertname, const std::string& state,
                                            std::chrono::seconds limit) {
  return wait_for(limit, [&] {
    const std::string alerts = loopback_http(prometheus_port_, "GET", "/api/v1/alerts");
    const auto at = alerts.find("\"alertname\":\"" + alertname + "\"");
    return at != std::string::npos && alerts.find("\"state\":\"" + state + "\"", at) != std::string::npos;
  });
}

std::string PrometheusStack::silence(const std::string& alertname) {
  const std::string body = R"({"matchers":[{"name":"alertname","value":")" + alertname +
                           R"(","isRegex":false,"isEqual":true}],"startsAt":"2000-01-01T00:00:00Z",)"
                           R"("endsAt":"2999-01-01T00:00:00Z","createdBy":"test","comment":"test"})";
  return loopback_http(alertmanager_port_, "POST", "/api/v2/silences", body);
}

void PrometheusStack::kill_prometheus() {
  if (prometheus_) prometheus_->stop(SIGKILL, std::chrono::seconds(10));
  prometheus_.reset();
}

}  // namespace skopos::testing
