// Memory freed at inference is kept for the next forward pass. glibc hands a
// large freed block back to the system (munmap, or a trim of its heap), and
// the next pass faults every page in again as it writes: in oneDNN's profile
// the q/k/v product of passes of 8 pairs of 256 tokens (a 9 MB output) took
// 4 ms in some passes and 9 ms in most. Blocks of 1 MB or more allocated
// without grad mode are cached here, by size; under grad mode (training's
// activations, which heap.go trims) and below 1 MB, allocation is libtorch's.
#include <ATen/core/grad_mode.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace {
constexpr size_t min_cached = 1 << 20;
constexpr size_t max_free = size_t(512) << 20; // free bytes kept at most

// A new block is n rounded up to a sixteenth of the power of two below it, and
// a request of n bytes takes a free block of up to n + n/4: sizes a little
// apart (passes of other lengths) share blocks.
size_t capacity(size_t n) {
  size_t step = 1;
  while (step * 16 <= n)
    step *= 2;
  return (n + step - 1) / step * step;
}

class InferenceCache final : public c10::Allocator {
public:
  explicit InferenceCache(c10::Allocator *base) : base_(base) {}

  c10::DataPtr allocate(size_t n) override {
    if (n < min_cached || at::GradMode::is_enabled()) {
      return base_->allocate(n);
    }
    void *p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first <= n + n / 4) {
        p = it->second;
        live_[p] = it->first;
        free_bytes_ -= it->first;
        free_.erase(it);
      }
    }
    if (p == nullptr) {
      const size_t c = capacity(n);
      p = c10::alloc_cpu(c);
      std::lock_guard<std::mutex> lock(mu_);
      live_[p] = c;
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void *dest, const void *src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Frees every cached block; returns their bytes.
  size_t clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &[size, p] : free_)
      c10::free_cpu(p);
    free_.clear();
    return std::exchange(free_bytes_, 0);
  }

  static InferenceCache &instance() {
    static InferenceCache *cache = new InferenceCache(c10::GetDefaultCPUAllocator()); // lives as long as tensors may
    return *cache;
  }

private:
  // The deleter of every block this allocator hands out, raw or not: a
  // block of libtorch's goes back to libtorch.
  static void release(void *p) {
    InferenceCache &c = instance();
    std::unique_lock<std::mutex> lock(c.mu_);
    auto it = c.live_.find(p);
    if (it == c.live_.end()) {
      lock.unlock();
      c.base_->raw_deleter()(p);
      return;
    }
    const size_t size = it->second;
    c.live_.erase(it);
    if (c.free_bytes_ + size > max_free) {
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    c.free_.emplace(size, p);
    c.free_bytes_ += size;
  }

  c10::Allocator *base_;
  std::mutex mu_;
  std::multimap<size_t, void *> free_;     // capacity -> block
  std::unordered_map<void *, size_t> live_; // block -> capacity
  size_t free_bytes_ = 0;
};
} // namespace

extern "C" {
// Makes libtorch's CPU tensors come from the cache (once; later calls do
// nothing).
void rerank_cache_inference_memory() {
  static const bool installed = [] {
    c10::SetCPUAllocator(&InferenceCache::instance(), 1);
    return true;
  }();
  (void)installed;
}

// Frees the cached blocks; returns how many bytes were cached.
size_t rerank_release_inference_memory() { return InferenceCache::instance().clear(); }
}
