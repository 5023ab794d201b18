#include "zookeeper_server.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>


namespace skopos::testing {

namespace {

constexpr const char* kClasspath =
    "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:"
    "/usr/share/java/log4j-1.2.jar:/usr/share/java/netty-all.jar";

std::string word(std::uint16_t port, const std::string& command) {
  return loopback_exchange(port, command, std::chrono::seconds(2));
}

bool serving(std::uint16_t port) {
  const std::string answer = word(port, "srvr");
  return answer.find("Mode: ") != std::string::npos;
}

}  // namespace

std::unique_ptr<ZooKeeperEnsemble> ZooKeeperEnsemble::start(int count, bool four_letter_words) {
  if (::access("/usr/share/java/zookeeper.jar", R_OK) != 0) {
    std::fprintf(stderr, "ZooKeeperEnsemble: /usr/share/java/zookeeper.jar is missing; run tools/install-deps.sh\n");
    std::abort();
  }
  std::unique_ptr<ZooKeeperEnsemble> ensemble(new ZooKeeperEnsemble());
  static int sequence = 0;
  ensemble->dir_ = "/tmp/skopos-zk-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++);
  // A port chosen free can be taken by another test before ZooKeeper binds it; a server
  // that exits at start is started again, with the whole ensemble, on new ports.
  for (int attempt = 1;; ++attempt) {
    if (ensemble->configure_and_launch(count, four_letter_words)) return ensemble;
    if (attempt == 3) {
      std::fprintf(stderr, "ZooKeeperEnsemble: a server exited at start three times (logs under %s)\n",
                   ensemble->dir_.c_str());
      std::abort();
    }
    for (std::size_t i = 0; i < ensemble->servers_.size(); ++i) ensemble->kill(static_cast<int>(i));
  }
}

bool ZooKeeperEnsemble::configure_and_launch(int count, bool four_letter_words) {
  std::filesystem::remove_all(dir_);
  servers_.clear();
  std::string members;
  for (int i = 0; i < count; ++i) {
    Server server;
    server.dir = dir_ + "/server" + std::to_string(i);
    server.client_port = free_loopback_port();
    std::filesystem::create_directories(server.dir + "/data");
    if (count > 1) {
      members += "server." + std::to_string(i + 1) + "=127.0.0.1:" + std::to_string(free_loopback_port()) + ":" +
                 std::to_string(free_loopback_port()) + "\n";
    }
    servers_.push_back(std::move(server));
  }
  for (int i = 0; i < count; ++i) {
    Server& server = servers_[static_cast<std::size_t>(i)];
    std::ofstream(server.dir + "/data/myid") << i + 1 << "\n";
    std::ofstream config(server.dir + "/zoo.cfg");
    // Short ticks: elections and session checks in tenths of a second.
    config << "tickTime=200\ninitLimit=20\nsyncLimit=10\ndataDir=" << server.dir << "/data\n"
           << "clientPort=" << server.client_port << "\nclientPortAddress=127.0.0.1\n"
           << "admin.enableServer=false\n"
           << (four_letter_words ? "4lw.commands.whitelist=ruok,srvr,mntr,stat\n" : "4lw.commands.whitelist=srvr\n")
           << members;
    std::ofstream(server.dir + "/log4j.properties") << "log4j.rootLogger=WARN, FILE\n"
                                                    << "log4j.appender.FILE=org.apache.log4j.FileAppender\n"
                                                    << "log4j.appender.FILE.File=" << server.dir << "/zookeeper.log\n"
                                                    << "log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n"
                                                    << "log4j.appender.FILE.layout.ConversionPattern=%d %p %c: %m%n\n";
  }
  for (Server& server : servers_) launch(server);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  for (Server& server : servers_) {
    while (!serving(server.client_port)) {
      if (server.process && server.process->stop(0, std::chrono::milliseconds(0)) != -1) {
        server.process.reset();
        return false;  // it exited
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        std::fprintf(stderr, "ZooKeeperEnsemble: a server did not serve within 90 s (logs under %s)\n", dir_.c_str());
        std::abort();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return true;
}

void ZooKeeperEnsemble::launch(Server& server) {
  server.process = std::make_unique<ChildProcess>(
      std::vector<std::string>{"java", "-Xmx128m", "-Dlog4j.configuration=file:" + server.dir + "/log4j.properties",
                               "-cp", kClasspath, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                               server.dir + "/zoo.cfg"},
      server.dir + "/stderr.log");
}

std::vector<std::string> ZooKeeperEnsemble::endpoints() const {
  std::vector<std::string> out;
  for (const Server& server : servers_) out.push_back("127.0.0.1:" + std::to_string(server.client_port));
  return out;
}

void ZooKeeperEnsemble::kill(int index) {
  Server& server = servers_[static_cast<std::size_t>(index)];
  if (server.process) server.process->stop(SIGKILL, std::chrono::seconds(10));
  server.process.reset();
}

void ZooKeeperEnsemble::restart(int index) {
  Server& server = servers_[static_cast<std::size_t>(index)];
  if (!server.process) launch(server);
}

int ZooKeeperEnsemble::leader() const {
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    if (servers_[i].process && word(servers_[i].client_port, "srvr").find("Mode: leader") != std::string::npos) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

ZooKeeperEnsemble::~ZooKeeperEnsemble() {
  for (Server& server : servers_) {
    if (server.process) server.process->stop(SIGTERM, std::chrono::seconds(10));
    server.process.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace skopos::testing
