#include "etcd_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>


namespace skopos::testing {

namespace {

bool healthy(std::uint16_t port) {
  return loopback_http(port, "GET", "/health").find("\"health\":\"true\"") != std::string::npos;
}

// A JSON string field's value, found textually (the answers here are small and flat).
std::string field(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const auto start = json.find(key);
  if (start == std::string::npos) return {};
  const auto end = json.find('"', start + key.size());
  return json.substr(start + key.size(), end - start - key.size());
}

// Each server holds a lock on <its directory>/owner.lock while it lives (flock, released
// by the kernel however the process ends). Removes the directories of servers whose
// process died without cleaning up -- killed by a timeout or a signal; their members
// died with them -- that is, those whose lock can be taken. A directory without the file
// (being made, or by an older version) is left alone.
void remove_orphaned_dirs() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/tmp", ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().rfind("skopos-etcd-", 0) != 0) continue;
    const UniqueFd lock(::open((it->path() / "owner.lock").c_str(), O_RDONLY | O_CLOEXEC));
    if (!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;
    std::error_code ignored;
    std::filesystem::remove_all(it->path(), ignored);
  }
}

}  // namespace

std::unique_ptr<EtcdServer> EtcdServer::start(int members, const EtcdTls* tls) {
  if (::access("/usr/bin/etcd", X_OK) != 0) {
    std::fprintf(stderr, "EtcdServer: /usr/bin/etcd is missing; run tools/install-deps.sh\n");
    std::abort();
  }
  remove_orphaned_dirs();
  std::unique_ptr<EtcdServer> server(new EtcdServer());
  static int sequence = 0;
  server->dir_ = "/tmp/skopos-etcd-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++);
  if (tls != nullptr) server->tls_ = *tls;
  // A port chosen free can be taken by another test before etcd binds it (tests run in
  // parallel); a member that exits at once is started again on new ports.
  for (int attempt = 1;; ++attempt) {
    std::filesystem::remove_all(server->dir_);
    std::filesystem::create_directories(server->dir_);
    server->owner_lock_ = UniqueFd(
        ::open((server->dir_ + "/owner.lock").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!server->owner_lock_ || ::flock(server->owner_lock_.get(), LOCK_EX) != 0) {
      std::fprintf(stderr, "EtcdServer: cannot lock %s/owner.lock\n", server->dir_.c_str());
      std::abort();
    }
    server->members_.clear();
    server->initial_cluster_.clear();
    for (int i = 0; i < members; ++i) {
      Member member;
      member.name = "member" + std::to_string(i);
      member.dir = server->dir_ + "/" + member.name;
      member.client_port = free_loopback_port();
      member.client_url =
          (tls != nullptr ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(member.client_port);
      member.metrics_port = free_loopback_port();
      member.peer_url = "http://127.0.0.1:" + std::to_string(free_loopback_port());
      std::filesystem::create_directories(member.dir);
      server->initial_cluster_ += (i == 0 ? "" : ",") + member.name + "=" + member.peer_url;
      server->members_.push_back(std::move(member));
    }
    for (Member& member : server->members_) server->launch(member, false);
    bool started = true;
    for (Member& member : server->members_) started = started && server->wait_healthy(member);
    if (started) return server;
    if (attempt == 3) {
      std::fprintf(stderr, "EtcdServer: a member exited at start three times (logs in %s)\n", server->dir_.c_str());
      std::abort();
    }
    std::fprintf(stderr, "EtcdServer: a member exited at start (a port taken?); starting again on new ports\n");
    for (Member& member : server->members_) {
      if (member.process) member.process->stop(SIGKILL, std::chrono::seconds(10));
      member.process.reset();
    }
  }
}

void EtcdServer::launch(Member& member, bool existing) {
  std::vector<std::string> argv = {
      "/usr/bin/etcd", "--name", member.name, "--data-dir", member.dir + "/data", "--listen-client-urls",
      member.client_url, "--advertise-client-urls", member.client_url, "--listen-peer-urls", member.peer_url,
      "--initial-advertise-peer-urls", member.peer_url, "--initial-cluster", initial_cluster_,
      "--initial-cluster-state", existing ? "existing" : "new", "--initial-cluster-token", dir_,
      "--listen-metrics-urls", "http://127.0.0.1:" + std::to_string(member.metrics_port), "--logger", "zap",
      "--log-outputs", member.dir + "/etcd.log"};
  if (tls_) {
    for (const std::string& arg : {std::string("--cert-file"), tls_->cert_file, std::string("--key-file"),
                                   tls_->key_file, std::string("--trusted-ca-file"), tls_->ca_file,
                                   std::string("--client-cert-auth")}) {
      argv.push_back(arg);
    }
  }
  // etcd 3.4 still logs some warnings (e.g. /health before a leader) to stderr.
  member.process = std::make_unique<ChildProcess>(argv, member.dir + "/etcd.stderr");
}

bool EtcdServer::wait_healthy(Member& member) const {
  // /health is true once the member sees a leader and can serve. The bound is generous:
  // under the sanitizers, with other tests running, elections are slow.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (!healthy(member.metrics_port)) {
    if (member.process && member.process->stop(0, std::chrono::milliseconds(0)) != -1) {
      member.process.reset();  // it exited
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "EtcdServer: %s did not become healthy in 90 s (log in %s/etcd.log)\n", member.name.c_str(),
                   member.dir.c_str());
      std::abort();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::vector<std::string> EtcdServer::endpoints() const {
  std::vector<std::string> out;
  for (const Member& member : members_) out.push_back(member.client_url);
  return out;
}

std::string EtcdServer::endpoint_list() const {
  std::string out;
  for (const Member& member : members_) out += (out.empty() ? "" : ",") + member.client_url;
  return out;
}

void EtcdServer::kill(int member) {
  Member& m = members_[static_cast<std::size_t>(member)];
  if (m.process) m.process->stop(SIGKILL, std::chrono::seconds(10));
  m.process.reset();
}

void EtcdServer::restart(int member) {
  Member& m = members_[static_cast<std::size_t>(member)];
  if (!m.process) launch(m, true);
  if (!wait_healthy(m)) {
    std::fprintf(stderr, "EtcdServer: %s exited on restart (log in %s/etcd.log)\n", m.name.c_str(), m.dir.c_str());
    std::abort();
  }
}

int EtcdServer::leader(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (!members_[i].process) continue;
      // {"header":{"member_id":"N",...},"leader":"N",...}: the member that is its own leader.
      const std::string status = loopback_http(members_[i].client_port, "POST", "/v3/maintenance/status", "{}");
      const std::string self = field(status, "member_id");
      if (!self.empty() && self == field(status, "leader")) return static_cast<int>(i);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

EtcdServer::~EtcdServer() {
  for (Member& member : members_) {
    if (member.process) member.process->stop(SIGTERM, std::chrono::seconds(10));
    member.process.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace skopos::testing
