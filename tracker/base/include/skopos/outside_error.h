// OutsideError: the one error type of the clients of outside systems (etcd, Mesos,
// Marathon, Docker), each on the HttpClient. What a caller must decide on is the same
// for all of them: could it not reach the system, did the system refuse, may the
// request have been applied, is the answer unreadable. Built from an HttpError in one
// place (from_http), so "may have been applied" is carried the same way everywhere.
//
// Domain errors (LockError, DrainError, MaintenanceError) stay where their kinds differ
// from these; they are built from an OutsideError, not from HTTP.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "skopos/http_client.h"

namespace skopos {

struct OutsideError {
  enum class Kind : std::uint8_t {
    kUnavailable,     // no endpoint answered; nothing was applied
    kUnknownOutcome,  // sent, and no answer that says what happened: it may have been applied
    kNoLeader,        // the system answers, but none of it leads (within the wait)
    kRefused,         // the system answered with an error: not applied
    kNotFound,        // what was asked about is not there (Docker's 404 on a container)
    kBadResponse,     // an answer that could not be understood: do not act on it
    kTimedOut,        // a wait of ours for the system ran out (Marathon's deployments)
  };
  std::string system;   // "etcd", "mesos", "marathon", "docker"
  Kind kind = Kind::kUnavailable;
  unsigned status = 0;  // the HTTP status, when the system answered with one
  int code = 0;         // the system's own error code, when it gives one (etcd: gRPC status)
  std::string message;  // for people: names the system and the request

  // The request may have taken effect: find out (re-read) before acting on a guess.
  bool maybe_applied() const { return kind == Kind::kUnknownOutcome; }
  // Refused with a 4xx: the request itself was wrong for the system's state, and
  // sending it again will be refused again.
  bool refused_as_wrong() const { return kind == Kind::kRefused && status >= 400 && status < 500; }

  // A transport failure: kUnknownOutcome when the request may have reached the server,
  // else kUnavailable. The message is `prefix` (e.g. "marathon ") and the HTTP error's.
  static OutsideError from_http(std::string system, const HttpError& error, std::string_view prefix);
  // An error of the system's own making (an answer), with its HTTP status.
  static OutsideError answered(std::string system, Kind kind, unsigned status, std::string message) {
    return OutsideError{std::move(system), kind, status, 0, std::move(message)};
  }
  static OutsideError unavailable(std::string system, std::string message) {
    return OutsideError{std::move(system), Kind::kUnavailable, 0, 0, std::move(message)};
  }
};

}  // namespace skopos
