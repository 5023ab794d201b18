#include "skopos/docker_engine.h"

#include <simdjson.h>

namespace skopos {

namespace {

OutsideError docker_error(OutsideError::Kind kind, unsigned status, std::string message) {
  return OutsideError::answered("docker", kind, status, std::move(message));
}

// Docker's events are a few hundred bytes; one this long is not an event.
constexpr std::size_t kMaxEventBytes = 64 * 1024;

std::string escape_path(const std::string& id) {
  std::string out;
  for (const char c : id) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                       c == '_' || c == '.';
    if (plain) {
      out += c;
    } else {
      static const char* hex = "0123456789ABCDEF";
      out += '%';
      out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += hex[static_cast<unsigned char>(c) & 0xf];
    }
  }
  return out;
}

OutsideError refused(const std::string& what, const HttpResponse& response) {
  const std::string message = parse_docker_error(response.body);
  return docker_error(response.status == 404 ? OutsideError::Kind::kNotFound : OutsideError::Kind::kRefused,
                     response.status, "docker " + what + ": HTTP " + std::to_string(response.status) + ": " + message);
}

}  // namespace

DockerEngine::DockerEngine(DockerEngineOptions options, std::unique_ptr<HttpClient> http)
    : options_(std::move(options)), http_(std::move(http)) {}
DockerEngine::~DockerEngine() = default;

Result<std::unique_ptr<DockerEngine>, OutsideError> DockerEngine::create(DockerEngineOptions options) {
  auto http = HttpClient::create(options.http);
  if (!http) return unexpected(docker_error(OutsideError::Kind::kUnavailable, 0, http.error().message()));
  return std::unique_ptr<DockerEngine>(new DockerEngine(std::move(options), std::move(*http)));
}

std::string DockerEngine::path(const std::string& rest) const {
  return options_.api_version.empty() ? rest : "/" + options_.api_version + rest;
}

Result<HttpResponse, OutsideError> DockerEngine::send(const std::string& method, const std::string& target,
                                                     bool idempotent) {
  HttpRequest request;
  request.method = method;
  request.target = path(target);
  request.idempotent = idempotent;
  auto response = http_->request(request);
  if (!response) {
    return unexpected(OutsideError::from_http("docker", response.error(), "docker "));
  }
  return std::move(*response);
}

Result<std::vector<ListedContainer>, OutsideError> DockerEngine::list(bool all) {
  auto response = send("GET", std::string("/containers/json") + (all ? "?all=1" : ""), true);
  if (!response) return unexpected(std::move(response).error());
  if (response->status != 200) return unexpected(refused("list", *response));
  auto list = parse_container_list(response->body);
  if (!list) return unexpected(docker_error(OutsideError::Kind::kBadResponse, 0, "docker list: " + list.error().message()));
  return std::move(*list);
}

Result<ContainerInfo, OutsideError> DockerEngine::inspect(const std::string& id) {
  auto response = send("GET", "/containers/" + escape_path(id) + "/json", true);
  if (!response) return unexpected(std::move(response).error());
  if (response->status != 200) return unexpected(refused("inspect '" + id + "'", *response));
  auto info = parse_container_inspect(response->body);
  if (!info) {
    return unexpected(docker_error(OutsideError::Kind::kBadResponse, 0, "docker inspect '" + id + "': " + info.error().message()));
  }
  return std::move(*info);
}

Result<DockerEngine::StopOutcome, OutsideError> DockerEngine::stop(const std::string& id, std::chrono::seconds grace) {
  // The daemon answers only once the container stopped: up to `grace`, then the kill.
  HttpRequest request;
  request.method = "POST";
  request.target = path("/containers/" + escape_path(id) + "/stop?t=" + std::to_string(grace.count()));
  HttpOptions longer = options_.http;
  longer.timeout += std::chrono::duration_cast<std::chrono::milliseconds>(grace);
  auto client = HttpClient::create(longer);
  if (!client) return unexpected(docker_error(OutsideError::Kind::kUnavailable, 0, client.error().message()));
  auto response = (*client)->request(request);
  if (!response) {
    return unexpected(OutsideError::from_http("docker", response.error(), "docker stop '" + id + "': "));
  }
  switch (response->status) {
    case 204: return StopOutcome::kStopped;
    case 304: return StopOutcome::kAlreadyStopped;
    case 404: return StopOutcome::kGone;
    default: return unexpected(refused("stop '" + id + "'", *response));
  }
}

Result<DockerEngine::KillOutcome, OutsideError> DockerEngine::kill(const std::string& id, const std::string& signal) {
  auto response = send("POST", "/containers/" + escape_path(id) + "/kill?signal=" + escape_path(signal), false);
  if (!response) return unexpected(std::move(response).error());
  switch (response->status) {
    case 204: return KillOutcome::kKilled;
    case 409: return KillOutcome::kNotRunning;
    case 404: return KillOutcome::kGone;
    default:
      // podman's compatible API answers 500 "can only kill running containers ...
      // container state improper" where Docker answers 409.
      if (response->status == 500 && parse_docker_error(response->body).find("can only kill running containers") !=
                                         std::string::npos) {
        return KillOutcome::kNotRunning;
      }
      return unexpected(refused("kill '" + id + "'", *response));
  }
}

Result<std::int64_t, OutsideError> DockerEngine::wait(const std::string& id, std::chrono::steady_clock::time_point until) {
  // POST /wait answers when the container stops; stream() has the long deadline.
  HttpRequest request;
  request.method = "POST";
  request.target = path("/containers/" + escape_path(id) + "/wait?condition=not-running");
  std::string body;
  unsigned status = 0;
  auto streamed = http_->stream(request, until, [&](std::string_view data) {
    body.append(data);
    return body.size() < 64 * 1024;
  }, status);
  if (!streamed) return unexpected(docker_error(OutsideError::Kind::kUnavailable, 0, "docker wait '" + id + "': " + streamed.error().message()));
  if (status == 404) return unexpected(docker_error(OutsideError::Kind::kNotFound, 404, "docker wait '" + id + "': no such container"));
  if (status != 200) return unexpected(docker_error(OutsideError::Kind::kRefused, status, "docker wait '" + id + "': HTTP " + std::to_string(status) + ": " + parse_docker_error(body)));
  simdjson::dom::parser parser;
  std::int64_t code = 0;
  if (body.empty()) {
    return unexpected(docker_error(OutsideError::Kind::kUnknownOutcome, 0, "docker wait '" + id + "': still running at the deadline"));
  }
  if (parser.parse(body)["StatusCode"].get(code) != simdjson::SUCCESS) {
    return unexpected(docker_error(OutsideError::Kind::kBadResponse, 0, "docker wait '" + id + "': no StatusCode in '" + body.substr(0, 100) + "'"));
  }
  return code;
}

Result<void, OutsideError> DockerEngine::events(std::int64_t since, std::chrono::steady_clock::time_point until,
                                               FunctionRef<bool(const DockerEvent&)> on_event, std::stop_token stop) {
  HttpRequest request;
  request.method = "GET";
  // filters={"type":["container"]}
  request.target = path("/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D");
  if (since > 0) request.target += "&since=" + std::to_string(since);
  std::string pending;
  std::optional<OutsideError> failure;
  unsigned status = 0;
  auto streamed = http_->stream(request, until, [&](std::string_view data) {
    pending.append(data);
    // Concatenated JSON objects, one per line on current daemons.
    for (auto newline = pending.find('\n'); newline != std::string::npos; newline = pending.find('\n')) {
      const std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (line.empty()) continue;
      auto event = parse_docker_event(line);
      if (!event) {
        failure = docker_error(OutsideError::Kind::kBadResponse, 0, "docker events: " + event.error().message());
        return false;
      }
      if (!on_event(*event)) return false;
    }
    if (pending.size() > kMaxEventBytes) {
      failure = docker_error(OutsideError::Kind::kBadResponse, 0, "docker events: an event longer than 64 KiB");
      return false;
    }
    return true;
  }, status, stop);
  if (!streamed) return unexpected(docker_error(OutsideError::Kind::kUnavailable, 0, "docker events: " + streamed.error().message()));
  if (stop.stop_requested()) return {};  // stopped, perhaps before any answer came
  if (status != 200) return unexpected(docker_error(OutsideError::Kind::kRefused, status, "docker events: HTTP " + std::to_string(status)));
  if (failure) return unexpected(std::move(*failure));
  return {};
}

}  // namespace skopos
