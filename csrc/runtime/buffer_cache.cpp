// The step buffer cache: contract in buffer_cache.hpp.
#include "runtime/buffer_cache.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define CONVFORGE_HAS_ATFORK 1
#endif

namespace convforge::buffer_cache {
namespace {

constexpr uint64_t kTag = 0x63666275665f7631ull;  // "cfbuf_v1": a block of this cache

struct Header {  // the first bytes of the kHeaderBytes before each block
  std::size_t bytes;
  uint64_t tag;
};
static_assert(sizeof(Header) <= kHeaderBytes, "header does not fit");

std::mutex g_mutex;  // guards everything below
std::unordered_map<std::size_t, std::vector<void*>> g_idle;  // exact size -> idle bases
std::size_t g_held = 0;
int64_t g_blocks = 0, g_hits = 0, g_misses = 0, g_users = 0;

#ifdef CONVFORGE_HAS_ATFORK
// fork() while another thread holds the mutex would leave it locked in the child forever:
// hold it across fork so that both sides start with it free.
void lock_for_fork() { g_mutex.lock(); }
void unlock_after_fork() { g_mutex.unlock(); }
[[maybe_unused]] const int g_atfork =
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
#endif

Header* header_of(void* p) {
  Header* h = reinterpret_cast<Header*>(static_cast<char*>(p) - kHeaderBytes);
  if (h->tag != kTag) {  // not ours: freeing it would corrupt the heap
    std::fprintf(stderr, "convforge: buffer cache got a block it did not allocate\n");
    std::abort();
  }
  return h;
}

void* fresh(std::size_t bytes, bool zero) {
  if (bytes > SIZE_MAX - kHeaderBytes) return nullptr;
  void* base = zero ? std::calloc(1, kHeaderBytes + bytes) : std::malloc(kHeaderBytes + bytes);
  if (!base) return nullptr;
  *static_cast<Header*>(base) = Header{bytes, kTag};
  return static_cast<char*>(base) + kHeaderBytes;
}

// An idle block of exactly `bytes` (its user pointer), or nullptr; counts the hit or miss.
void* take(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_idle.find(bytes);
  if (it == g_idle.end() || it->second.empty()) {
    ++g_misses;
    return nullptr;
  }
  void* base = it->second.back();
  it->second.pop_back();
  g_held -= bytes;
  --g_blocks;
  ++g_hits;
  return static_cast<char*>(base) + kHeaderBytes;
}

}  // namespace

void* allocate(std::size_t bytes, bool zero) {
  if (bytes >= kCacheMinBytes) {
    if (void* p = take(bytes)) {
      if (zero) std::memset(p, 0, bytes);  // pages already mapped: cheaper than their faults
      return p;
    }
  }
  return fresh(bytes, zero);
}

void release(void* p) {
  if (!p) return;
  Header* h = header_of(p);
  const std::size_t bytes = h->bytes;
  if (bytes >= kCacheMinBytes) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_users > 0 && g_held + bytes <= kCacheMaxHeldBytes) {
      g_idle[bytes].push_back(h);
      g_held += bytes;
      ++g_blocks;
      return;
    }
  }
  std::free(h);
}

void* reallocate(void* p, std::size_t bytes) {
  if (!p) return allocate(bytes, false);
  const std::size_t old = header_of(p)->bytes;
  void* q = allocate(bytes, false);
  if (!q) return nullptr;  // p stays valid, as with realloc
  std::memcpy(q, p, old < bytes ? old : bytes);
  release(p);
  return q;
}

void begin() {
  std::lock_guard<std::mutex> lock(g_mutex);
  ++g_users;
}

void end() {
  std::unordered_map<std::size_t, std::vector<void*>> idle;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_users > 0) --g_users;
    if (g_users > 0) return;
    idle.swap(g_idle);
    g_held = 0;
    g_blocks = 0;
  }
  for (auto& entry : idle)
    for (void* base : entry.second) std::free(base);
}

Stats stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return Stats{g_hits, g_misses, static_cast<int64_t>(g_held), g_blocks, g_users};
}

}  // namespace convforge::buffer_cache
