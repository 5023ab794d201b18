#include "podman.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace skopos::testing {

namespace fs = std::filesystem;

namespace {

bool socket_answers(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

std::vector<std::string> PodmanService::global_flags() const {
  return {"podman", "--root", dir_ + "/root", "--runroot", dir_ + "/run", "--storage-driver", "vfs",
          "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"};
}

Result<std::string> PodmanService::podman(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = global_flags();
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = run_command(argv);
  if (!out) return out;
  return trim(std::move(*out));
}

Result<std::string> PodmanService::run_detached(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"run", "-d"};
  argv.insert(argv.end(), args.begin(), args.end());
  return podman(argv);
}

Result<std::unique_ptr<PodmanService>> PodmanService::start() {
  const std::string dir = "/tmp/skopos-podman-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir + "/image/bin");
  std::unique_ptr<PodmanService> service(new PodmanService(dir));

  {
    std::ofstream conf(dir + "/containers.conf");
    conf << "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n"
            "events_logger = \"file\"\n";
  }
  // Every podman we start (the service included) reads this config.
  ::setenv("CONTAINERS_CONF", (dir + "/containers.conf").c_str(), 1);

  // The image: busybox-static and its applets, nothing else.
  fs::copy_file("/bin/busybox", dir + "/image/bin/busybox", ec);
  if (ec) return unexpected(Error::invalid("copy", "/bin/busybox", ec.message() + " (install busybox-static)"));
  for (const char* applet : {"sh", "httpd", "sleep", "nc", "cat"}) {
    fs::create_symlink("busybox", dir + "/image/bin/" + applet, ec);
  }
  if (auto tar = run_command({"tar", "-C", dir + "/image", "-cf", dir + "/image.tar", "."}); !tar) {
    return unexpected(tar.error());
  }
  if (auto imported = service->podman({"import", dir + "/image.tar", kImage}); !imported) {
    return unexpected(imported.error());
  }

  service->socket_ = dir + "/docker.sock";
  std::vector<std::string> argv = service->global_flags();
  argv.insert(argv.end(), {"system", "service", "--time=0", "unix://" + service->socket_});
  service->service_ = std::make_unique<ChildProcess>(argv);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!socket_answers(service->socket_)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return unexpected(Error::invalid("start", "podman system service", "its socket did not answer within 20 s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return service;
}

PodmanService::~PodmanService() {
  (void)podman({"rm", "--force", "--all", "--time", "0"});
  if (service_) service_->stop(SIGTERM, std::chrono::seconds(10));
  service_.reset();
  (void)podman({"rmi", "--force", "--all"});
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

}  // namespace skopos::testing
