// runtime.cpp: the execution model behind shim.hpp (tests/cuda/emu).
//
// One launch: blocks run one at a time, in the order Options::block_order asks (so static
// __shared__ storage is per block, and block scheduling can be varied). Before each block all
// __shared__ storage is overwritten with Options::poison (the linker script shared.ld gathers
// the kernels' function-local statics between cfemu_shared_begin and cfemu_shared_end), so a
// thread that reads shared memory no thread of its block wrote sees garbage, not a neighbour's
// leftovers.
//
// Default build: the block's CUDA threads are fibers on the calling OS thread (own stacks, a
// register-switching context swap). Each runs until it reaches __syncthreads() or returns; a
// barrier phase ends when every thread is waiting, then all resume, in Options::thread_order
// (forward, reverse or shuffled per phase), so a missing barrier shows as an order-dependent
// result. The CUDA rules are checked: all threads of a block must wait at the same
// __syncthreads() call, and none may return while others wait (a divergent barrier).
//
// CFEMU_OS_THREADS build (race_harness.cpp under ThreadSanitizer): one OS thread per CUDA
// thread, __syncthreads() = std::barrier::arrive_and_wait, a returning thread arrives and drops,
// and the barrier is created anew for every block.
#include "runtime.hpp"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef CFEMU_OS_THREADS
#include <barrier>
#include <thread>
#else
#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#endif

#include "shim.hpp"  // last: its macros must not reach the standard headers

// Bounds of the __shared__ storage, defined by shared.ld (weak: null without it).
extern "C" char cfemu_shared_begin[] __attribute__((weak));
extern "C" char cfemu_shared_end[] __attribute__((weak));

namespace cfemu {

std::vector<Family>& families() {
  static std::vector<Family> all;
  return all;
}

std::size_t shared_bytes() {
  return cfemu_shared_begin && cfemu_shared_end
             ? static_cast<std::size_t>(cfemu_shared_end - cfemu_shared_begin)
             : 0;
}

namespace {

uint3 g_block_dim{1, 1, 1}, g_grid_dim{1, 1, 1}, g_block_idx{0, 0, 0};

// A small xorshift generator: the shuffles are the same on every machine.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// order (n,) <- 0..n-1 forward, reversed, or shuffled (Fisher-Yates)
void fill_order(std::vector<unsigned>& order, unsigned n, Order how, Rng& rng) {
  order.resize(n);
  for (unsigned i = 0; i < n; ++i) order[i] = how == Order::reverse ? n - 1 - i : i;
  if (how == Order::shuffle)
    for (unsigned i = n; i > 1; --i) std::swap(order[i - 1], order[rng.next() % i]);
}

void poison_shared(const Options& o) {
  if (o.poison >= 0 && shared_bytes() > 0)
    std::memset(cfemu_shared_begin, o.poison & 0xff, shared_bytes());
}

}  // namespace

const uint3& block_idx() { return g_block_idx; }
const uint3& block_dim() { return g_block_dim; }
const uint3& grid_dim() { return g_grid_dim; }

#ifdef CFEMU_OS_THREADS
// ------------------------------------------------------------------------------ OS threads

namespace {
thread_local uint3 t_thread_idx{0, 0, 0};
std::barrier<>* g_barrier = nullptr;
}  // namespace

const uint3& thread_idx() { return t_thread_idx; }
void syncthreads(int) { g_barrier->arrive_and_wait(); }

static void run_block(const Entry& e, void* const* slots, unsigned block, Stats&) {
  std::barrier<> barrier(block);
  g_barrier = &barrier;
  std::vector<std::thread> threads;
  threads.reserve(block);
  // t: CUDA threads of the block
  for (unsigned t = 0; t < block; ++t)
    threads.emplace_back([&, t] {
      t_thread_idx = uint3{t, 0, 0};
      e.invoke(e.fn, slots);
      barrier.arrive_and_drop();
    });
  for (auto& th : threads) th.join();
  g_barrier = nullptr;
}

#else
// ------------------------------------------------------------------------------ fibers

namespace {

enum class State { runnable, at_barrier, done };

struct Fiber {
  void* sp = nullptr;  // saved stack pointer (x86-64) while switched out
  char* stack = nullptr;
  State state = State::done;
  int site = 0;  // source line of the __syncthreads() it waits at
  uint3 idx{0, 0, 0};
#if !defined(__x86_64__)
  ucontext_t ctx;
#endif
};

constexpr std::size_t kStackBytes = 256 * 1024;  // per fiber (plus one guard page below)
constexpr std::size_t kGuardBytes = 4096;

std::vector<Fiber> g_fibers;  // one per CUDA thread of a block, stacks kept across launches
Fiber* g_cur = nullptr;       // the fiber running now
const Entry* g_entry = nullptr;
void* const* g_slots = nullptr;

#if defined(__x86_64__)
void* g_sched_sp = nullptr;
// cfemu_switch(save, to): pushes the callee-saved registers, stores the stack pointer in *save,
// loads `to` and pops the registers saved there (or the initial frame of init_stack).
extern "C" void cfemu_switch(void** save, void* to);
asm(R"(
  .text
  .p2align 4
  .type cfemu_switch,@function
cfemu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cfemu_switch,.-cfemu_switch
)");
#else
ucontext_t g_sched_ctx;
#endif

void to_scheduler() {
#if defined(__x86_64__)
  cfemu_switch(&g_cur->sp, g_sched_sp);
#else
  swapcontext(&g_cur->ctx, &g_sched_ctx);
#endif
}

[[noreturn]] void fiber_main() {
  g_entry->invoke(g_entry->fn, g_slots);
  g_cur->state = State::done;
  to_scheduler();
  __builtin_trap();  // a finished fiber is never resumed
}

void start(Fiber& f) {
  char* top = f.stack + kStackBytes;  // 16-byte aligned (mmap)
#if defined(__x86_64__)
  // initial frame: six zero registers, then fiber_main as the return address of `ret`, then a
  // zero fake return address for fiber_main (entered with rsp = 8 mod 16, as after a call)
  auto* frame = reinterpret_cast<void**>(top) - 8;
  for (int i = 0; i < 6; ++i) frame[i] = nullptr;
  frame[6] = reinterpret_cast<void*>(&fiber_main);
  frame[7] = nullptr;
  f.sp = frame;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
}

void resume(Fiber& f) {
  g_cur = &f;
#if defined(__x86_64__)
  cfemu_switch(&g_sched_sp, f.sp);
#else
  swapcontext(&g_sched_ctx, &f.ctx);
#endif
  g_cur = nullptr;
}

void ensure_fibers(unsigned n) {
  while (g_fibers.size() < n) {
    void* mem = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error("cfemu: cannot map a fiber stack");
    mprotect(mem, kGuardBytes, PROT_NONE);  // stack overflow faults instead of corrupting
    Fiber f;
    f.stack = static_cast<char*>(mem) + kGuardBytes;
    g_fibers.push_back(f);
  }
}

}  // namespace

const uint3& thread_idx() { return g_cur->idx; }

void syncthreads(int line) {
  g_cur->site = line;
  g_cur->state = State::at_barrier;
  to_scheduler();
}

static void run_block(const Entry& e, void* const* slots, unsigned block, Stats& stats,
                      const Options& o, Rng& rng, std::vector<unsigned>& order) {
  ensure_fibers(block);
  g_entry = &e;
  g_slots = slots;
  // t: CUDA threads of the block
  for (unsigned t = 0; t < block; ++t) {
    Fiber& f = g_fibers[t];
    f.idx = uint3{t, 0, 0};
    f.state = State::runnable;
    f.site = 0;
    start(f);
  }
  // phase: the stretch between two barriers
  for (;;) {
    fill_order(order, block, o.thread_order, rng);
    for (unsigned t : order)
      if (g_fibers[t].state == State::runnable) resume(g_fibers[t]);
    unsigned done = 0;
    for (unsigned t = 0; t < block; ++t) done += g_fibers[t].state == State::done;
    if (done == block) return;
    const std::string where = "block " + std::to_string(g_block_idx.x) + " of " + e.name;
    if (done > 0)
      throw std::runtime_error(where + ": " + std::to_string(done) + " threads returned while " +
                               std::to_string(block - done) +
                               " wait at __syncthreads() (divergent barrier)");
    for (unsigned t = 1; t < block; ++t)
      if (g_fibers[t].site != g_fibers[0].site)
        throw std::runtime_error(where + ": thread 0 waits at the __syncthreads() of line " +
                                 std::to_string(g_fibers[0].site) + ", thread " +
                                 std::to_string(t) + " at line " +
                                 std::to_string(g_fibers[t].site));
    for (unsigned t = 0; t < block; ++t) g_fibers[t].state = State::runnable;
    ++stats.barriers;
  }
}

#endif  // CFEMU_OS_THREADS

Stats launch(const Entry& e, unsigned grid, unsigned block, void* const* slots,
             const Options& o) {
  if (grid == 0 || block == 0) throw std::runtime_error(e.name + ": empty launch");
  g_grid_dim = uint3{grid, 1, 1};
  g_block_dim = uint3{block, 1, 1};
  Rng rng{o.seed * 0x9E3779B97F4A7C15ull + 1};
  std::vector<unsigned> blocks, order;
  fill_order(blocks, grid, o.block_order, rng);
  Stats stats;
  // b: blocks, one at a time
  for (unsigned b : blocks) {
    g_block_idx = uint3{b, 0, 0};
    poison_shared(o);
#ifdef CFEMU_OS_THREADS
    run_block(e, slots, block, stats);
#else
    run_block(e, slots, block, stats, o, rng, order);
#endif
    ++stats.blocks;
  }
  return stats;
}

}  // namespace cfemu
