// The names of an enum's values, kept in one table per enum and read both ways:
//
//   constexpr std::pair<Tier, const char*> kTierNames[] = {{Tier::kControl, "control"}, ...};
//   enum_name(kTierNames, Tier::kProxy)       -> "proxy"
//   enum_value(kTierNames, "worker")          -> Tier::kWorker (nullopt for a name not there)
//
// So a value's name is written once, and a new value cannot have a name one way only.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace skopos {

template <class E, std::size_t N>
constexpr const char* enum_name(const std::pair<E, const char*> (&names)[N], E value, const char* unknown = "?") {
  for (const auto& [candidate, name] : names) {
    if (candidate == value) return name;
  }
  return unknown;
}

template <class E, std::size_t N>
constexpr std::optional<E> enum_value(const std::pair<E, const char*> (&names)[N], std::string_view text) {
  for (const auto& [candidate, name] : names) {
    if (text == name) return candidate;
  }
  return std::nullopt;
}

}  // namespace skopos
