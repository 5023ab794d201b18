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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// The table as an option's choices (OptionTable::choice): {"name", value}, in order.
template <class E, std::size_t N>
std::vector<std::pair<std::string, E>> enum_choices(const std::pair<E, const char*> (&names)[N]) {
  std::vector<std::pair<std::string, E>> out;
  for (const auto& [value, name] : names) out.emplace_back(name, value);
  return out;
}

}  // namespace skopos
