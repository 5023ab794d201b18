// UniqueHandle: an owner for a C library's handle (DIR*, a BPF skeleton, a libbpf ring
// buffer, a conntrack handle): std::unique_ptr with the library's release function, so
// every handle is released on every path, early returns and errors included.
//
//   using UniqueDir = UniqueHandle<DIR, ::closedir>;
//   UniqueDir dir(::opendir(path));
//   if (!dir) return error;
#pragma once

#include <memory>

namespace skopos {

template <auto Release>
struct ReleaseWith {
  template <class T>
  void operator()(T* handle) const {
    if (handle != nullptr) (void)Release(handle);
  }
};

template <class T, auto Release>
using UniqueHandle = std::unique_ptr<T, ReleaseWith<Release>>;

}  // namespace skopos
