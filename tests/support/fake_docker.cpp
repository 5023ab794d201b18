#include "fake_docker.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace skopos::testing {

namespace {

void send_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

std::string response(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Not Found") +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

std::string chunk(const std::string& data) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", data.size());
  return std::string(size) + "\r\n" + data + "\r\n";
}

}  // namespace

std::string FakeDocker::make_id(int n) {
  // The number first, so ids differ within their first 12 characters as real ones do.
  char head[9];
  std::snprintf(head, sizeof head, "%08x", static_cast<unsigned>(n));
  return std::string(head) + std::string(56, 'b');
}

FakeDocker::FakeDocker(std::string socket_path) : socket_(std::move(socket_path)) {
  ::unlink(socket_.c_str());
  listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  socket_.copy(address.sun_path, sizeof address.sun_path - 1);
  if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_.get(), 64) != 0) {
    std::perror("FakeDocker bind");
    std::abort();
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) std::abort();
  wake_read_ = UniqueFd(wake[0]);
  wake_write_ = UniqueFd(wake[1]);
  thread_ = std::thread([this] { serve(); });
}

FakeDocker::~FakeDocker() {
  wake_write_.reset();  // EOF on the pipe ends serve()
  thread_.join();
  for (int fd : event_streams_) ::close(fd);
  ::unlink(socket_.c_str());
}

std::string FakeDocker::inspect_json(const Container& c) const {
  std::string env = R"(["PATH=/bin")";
  if (!c.marathon_app_id.empty()) env += R"(,"MARATHON_APP_ID=)" + c.marathon_app_id + "\"";
  if (!c.mesos_task_id.empty()) env += R"(,"MESOS_TASK_ID=)" + c.mesos_task_id + "\"";
  env += "]";
  return R"({"Id":")" + c.id + R"(","Name":"/)" + c.name + R"(","State":{"Status":"running","Running":true,"Pid":)" +
         std::to_string(c.pid) + R"(},"HostConfig":{"NetworkMode":")" + c.network_mode +
         R"("},"Config":{"Env":)" + env + R"(,"Labels":{}},"NetworkSettings":{"Ports":{},"Networks":{}}})";
}

void FakeDocker::broadcast(const std::string& action, const Container& c) {
  const std::string event = R"({"Type":"container","Action":")" + action + R"(","Actor":{"ID":")" + c.id +
                            R"(","Attributes":{"name":")" + c.name + R"("}},"time":)" +
                            std::to_string(std::time(nullptr)) + "}\n";
  for (int fd : event_streams_) send_all(fd, chunk(event));
}

void FakeDocker::start(const Container& container) {
  std::lock_guard lock(mutex_);
  containers_[container.id] = container;
  broadcast("start", container);
}

void FakeDocker::stop(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return;
  const Container gone = it->second;
  containers_.erase(it);
  broadcast("die", gone);
}

void FakeDocker::serve() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) handle(fd);
  }
}

void FakeDocker::handle(int fd) {
  std::string request;
  char buffer[4096];
  while (request.find("\r\n\r\n") == std::string::npos) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 2000) <= 0) break;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    request.append(buffer, static_cast<std::size_t>(n));
  }
  const auto space = request.find(' ');
  const auto end = request.find(' ', space + 1);
  const std::string path = space == std::string::npos ? "" : request.substr(space + 1, end - space - 1);
  std::lock_guard lock(mutex_);
  if (path.starts_with("/events")) {
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    event_streams_.push_back(fd);  // kept open; events are pushed by start()/stop()
    return;
  }
  if (path.starts_with("/containers/json")) {
    std::string body = "[";
    for (const auto& [id, c] : containers_) {
      body += std::string(body.size() > 1 ? "," : "") + R"({"Id":")" + id + R"(","Names":["/)" + c.name +
              R"("],"State":"running"})";
    }
    send_all(fd, response(200, body + "]"));
  } else if (path.starts_with("/containers/")) {
    const std::string id = path.substr(12, path.find('/', 12) - 12);
    auto it = containers_.find(id);
    send_all(fd, it == containers_.end() ? response(404, R"({"message":"No such container: )" + id + "\"}")
                                         : response(200, inspect_json(it->second)));
  } else {
    send_all(fd, response(404, R"({"message":"page not found"})"));
  }
  ::close(fd);
}

namespace {

// Forks a child that runs `enter` (joining or making its network namespace), tells the
// parent it is inside, and pauses until killed; returns its pid once it is inside.
template <class Enter>
pid_t park(Enter enter) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!enter()) ::_exit(1);
    const char ok = 1;
    (void)!::write(ready[1], &ok, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  // Only once it is inside may anyone look up its namespace.
  char byte = 0;
  if (::read(ready[0], &byte, 1) != 1) std::abort();
  ::close(ready[0]);
  return pid;
}

}  // namespace

ParkedProcess::ParkedProcess(int netns_fd) : pid_(park([netns_fd] { return ::setns(netns_fd, CLONE_NEWNET) == 0; })) {}

std::unique_ptr<ParkedProcess> ParkedProcess::with_own_netns() {
  std::unique_ptr<ParkedProcess> process(new ParkedProcess());
  process->pid_ = park([] {
    if (::unshare(CLONE_NEWNET) != 0) return false;
    // Loopback up, as every runtime does.
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(fd, SIOCGIFFLAGS, &request) == 0) {
      request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
      ::ioctl(fd, SIOCSIFFLAGS, &request);
    }
    ::close(fd);
    return true;
  });
  return process;
}

ParkedProcess::~ParkedProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

}  // namespace skopos::testing
