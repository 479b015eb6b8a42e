// Python side of the step buffer cache (csrc/runtime/buffer_cache.hpp): a NumPy data-memory
// handler (NEP 49, NumPy >= 1.22) whose allocator is the cache, and the calls that set it.
//
//   step_buffer_handler()      the handler, a PyCapsule named "mem_handler" (one per process)
//   set_mem_handler(handler)   makes `handler` NumPy's handler for array data allocated in the
//                              current context (NumPy keeps it in a context variable: other
//                              threads keep theirs); returns the previous one, to restore
//   buffer_cache_begin()       a user starts: freed blocks are kept for reuse
//   buffer_cache_end()         a user stops; the last one frees the idle blocks
//   buffer_cache_stats()       {"hits", "misses", "held_bytes", "blocks", "users"}
//
// An array remembers the handler that allocated it and frees through it, so blocks allocated
// while the handler was set come back to the cache whenever their arrays die.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common.hpp"
#include "runtime/buffer_cache.hpp"

namespace convforge::bind {
namespace {

namespace bc = buffer_cache;

// NumPy's PyDataMem_Handler, version 1 (numpy/ndarraytypes.h; its layout is part of NumPy's
// stable ABI): declared here so the build does not need NumPy's headers.
struct Allocator {
  void* ctx;
  void* (*malloc)(void* ctx, std::size_t size);
  void* (*calloc)(void* ctx, std::size_t nelem, std::size_t elsize);
  void* (*realloc)(void* ctx, void* ptr, std::size_t new_size);
  void (*free)(void* ctx, void* ptr, std::size_t size);
};
struct Handler {
  char name[127];
  uint8_t version;
  Allocator allocator;
};

void* h_malloc(void*, std::size_t size) { return bc::allocate(size, false); }
void* h_calloc(void*, std::size_t nelem, std::size_t elsize) {
  if (elsize && nelem > SIZE_MAX / elsize) return nullptr;
  return bc::allocate(nelem * elsize, true);
}
void* h_realloc(void*, void* p, std::size_t size) { return bc::reallocate(p, size); }
void h_free(void*, void* p, std::size_t) { bc::release(p); }  // the block's header has its size

Handler g_handler = {"convforge_step_buffers", 1,
                     {nullptr, h_malloc, h_calloc, h_realloc, h_free}};

// PyDataMem_SetHandler from NumPy's C-API table (slot 304 since NumPy 1.22, ABI-stable).
using SetHandlerFn = PyObject* (*)(PyObject*);
SetHandlerFn numpy_set_handler() {
  py::object mod;
  try {
    mod = py::module_::import("numpy._core._multiarray_umath");  // NumPy 2
  } catch (py::error_already_set&) {
    mod = py::module_::import("numpy.core._multiarray_umath");   // NumPy 1.x
  }
  py::object cap = mod.attr("_ARRAY_API");
  void** api = static_cast<void**>(PyCapsule_GetPointer(cap.ptr(), nullptr));
  if (!api) throw py::error_already_set();
  return reinterpret_cast<SetHandlerFn>(api[304]);
}

}  // namespace

void bind_buffer_cache(py::module_& m) {
  m.def("step_buffer_handler", [] {
    static py::capsule handler(static_cast<void*>(&g_handler), "mem_handler");
    return handler;
  }, "NumPy data-memory handler of the step buffer cache (a PyCapsule 'mem_handler').");
  m.def("set_mem_handler", [](py::object handler) {
    if (!PyCapsule_IsValid(handler.ptr(), "mem_handler"))
      throw py::type_error("handler must be a NumPy memory handler (a PyCapsule named "
                           "'mem_handler'), got " + std::string(py::str(py::type::of(handler))));
    static const SetHandlerFn set = numpy_set_handler();
    PyObject* old = set(handler.ptr());
    if (!old) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(old);
  }, py::arg("handler"),
     "Sets NumPy's data-memory handler of the current context; returns the previous one.");
  m.def("buffer_cache_begin", &bc::begin,
        "A user of the step buffer cache starts: blocks freed from now on are kept for reuse.");
  m.def("buffer_cache_end", [] {
    py::gil_scoped_release release;
    bc::end();
  }, "A user of the step buffer cache stops; the last one frees the idle blocks.");
  m.def("buffer_cache_stats", [] {
    const bc::Stats s = bc::stats();
    py::dict d;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["held_bytes"] = s.held_bytes;
    d["blocks"] = s.blocks;
    d["users"] = s.users;
    return d;
  }, "Counters of the step buffer cache: hits, misses (cacheable sizes), idle bytes and "
     "blocks, users (begin() calls not yet ended).");
}

}  // namespace convforge::bind
