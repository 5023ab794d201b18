// Result<T, E>: the one error-return type of the project, shaped like C++23's
// std::expected (which GCC 12's libstdc++ does not offer in C++20 mode), so that moving
// to std::expected later is a rename.
//
// Recoverable errors travel as values; exceptions are reserved for startup
// misconfiguration (FatalError, caught only in main) and are never used on hot paths.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace skopos {

// An error from an outside call: what failed (operation), on what (object), the errno
// if the failure came from the kernel (0 otherwise), and any detail worth reading.
// message() renders "operation object: detail (strerror)".
struct Error {
  int code = 0;
  std::string operation;
  std::string object;
  std::string detail;

  // An error from a failed system call; `code` is the errno it set.
  static Error from_errno(int code, std::string operation, std::string object);
  // An error that is not a system call's (bad data, a protocol violation, a timeout).
  static Error invalid(std::string operation, std::string object, std::string detail);

  std::string message() const;
};

template <class E>
class Unexpected {
 public:
  explicit Unexpected(E error) : error_(std::move(error)) {}
  E& error() & { return error_; }
  E&& error() && { return std::move(error_); }
  const E& error() const& { return error_; }

 private:
  E error_;
};

template <class E>
Unexpected<std::decay_t<E>> unexpected(E&& error) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(error));
}

// Holds either a value or an error. Accessing the wrong side is a programming error
// (asserted in debug builds), exactly as with std::expected.
template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = E;

  Result()
    requires std::is_default_constructible_v<T>
      : storage_(std::in_place_index<0>) {}
  template <class U = T>
    requires std::is_constructible_v<T, U&&> &&
             (!std::is_same_v<std::remove_cvref_t<U>, Result>) &&
             (!std::is_same_v<std::remove_cvref_t<U>, Unexpected<E>>)
  Result(U&& value) : storage_(std::in_place_index<0>, std::forward<U>(value)) {}  // NOLINT
  template <class G>
  Result(Unexpected<G> error)  // NOLINT(google-explicit-constructor)
      : storage_(std::in_place_index<1>, std::move(error).error()) {}

  bool has_value() const noexcept { return storage_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    assert(has_value());
    return *std::get_if<0>(&storage_);
  }
  const T& value() const& {
    assert(has_value());
    return *std::get_if<0>(&storage_);
  }
  T&& value() && {
    assert(has_value());
    return std::move(*std::get_if<0>(&storage_));
  }
  E& error() & {
    assert(!has_value());
    return *std::get_if<1>(&storage_);
  }
  const E& error() const& {
    assert(!has_value());
    return *std::get_if<1>(&storage_);
  }
  E&& error() && {
    assert(!has_value());
    return std::move(*std::get_if<1>(&storage_));
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, E> storage_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  Result() = default;
  template <class G>
  Result(Unexpected<G> error)  // NOLINT(google-explicit-constructor)
      : error_(std::move(error).error()), failed_(true) {}

  bool has_value() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const { assert(has_value()); }
  E& error() & {
    assert(failed_);
    return error_;
  }
  const E& error() const& {
    assert(failed_);
    return error_;
  }
  E&& error() && {
    assert(failed_);
    return std::move(error_);
  }

 private:
  E error_{};
  bool failed_ = false;
};

// Thrown only for startup misconfiguration (bad flags, unreadable config) and caught
// only in main, which prints message and hint and exits non-zero.
class FatalError {
 public:
  FatalError(std::string message, std::string hint = {})
      : message_(std::move(message)), hint_(std::move(hint)) {}
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string message_;
  std::string hint_;
};

}  // namespace skopos
