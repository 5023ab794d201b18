// Memory for one Asio handler at a time, so an operation that repeats on a hot path
// (a client's next write, the next wait on the BPF ring buffer) allocates nothing.
// The pattern of Asio's "allocation" example: wrap the handler with
// `memory.wrap(handler)`; Asio finds the allocator through the wrapper and uses the
// buffer, falling back to the heap if it is busy or too small.
//
// One HandlerMemory serves one outstanding operation at a time (the callers guarantee
// it: one write in flight per client, one wait per descriptor). Not thread-safe.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace skopos {

class HandlerMemory {
 public:
  HandlerMemory() = default;
  HandlerMemory(const HandlerMemory&) = delete;
  HandlerMemory& operator=(const HandlerMemory&) = delete;

  void* allocate(std::size_t size) {
    if (!in_use_ && size <= sizeof storage_) {
      in_use_ = true;
      return &storage_;
    }
    return ::operator new(size);
  }
  void deallocate(void* pointer) {
    if (pointer == &storage_) {
      in_use_ = false;
    } else {
      ::operator delete(pointer);
    }
  }

  template <class T>
  class Allocator {
   public:
    using value_type = T;
    explicit Allocator(HandlerMemory& memory) : memory_(&memory) {}
    template <class U>
    Allocator(const Allocator<U>& other) noexcept : memory_(other.memory_) {}  // NOLINT
    T* allocate(std::size_t n) const { return static_cast<T*>(memory_->allocate(sizeof(T) * n)); }
    void deallocate(T* pointer, std::size_t) const { memory_->deallocate(pointer); }
    bool operator==(const Allocator& other) const noexcept { return memory_ == other.memory_; }
    bool operator!=(const Allocator& other) const noexcept { return memory_ != other.memory_; }

   private:
    template <class>
    friend class Allocator;
    HandlerMemory* memory_;
  };

  template <class Handler>
  class Wrapped {
   public:
    using allocator_type = Allocator<Handler>;
    Wrapped(HandlerMemory& memory, Handler handler) : memory_(memory), handler_(std::move(handler)) {}
    allocator_type get_allocator() const noexcept { return allocator_type(memory_); }
    template <class... Args>
    void operator()(Args&&... args) {
      handler_(std::forward<Args>(args)...);
    }

   private:
    HandlerMemory& memory_;
    Handler handler_;
  };

  template <class Handler>
  Wrapped<std::decay_t<Handler>> wrap(Handler&& handler) {
    return Wrapped<std::decay_t<Handler>>(*this, std::forward<Handler>(handler));
  }

 private:
  alignas(std::max_align_t) unsigned char storage_[1024];
  bool in_use_ = false;
};

}  // namespace skopos
