// module.cpp: _cfemu (CFEMU_MODULE: one name per build), the Python face of the CPU emulator (tests/cuda/emu), loaded only by the
// tests (tests/cuda/cuda_emu.py builds it; it is not part of the wheel).
//
//   families() -> {family: (source sha256, [entry names])}
//   entry(name) -> Kernel;  Kernel.params -> [(kind, is_const)]
//   launch(kernel, grid, block, args, block_order, thread_order, poison, seed)
//       -> (blocks run, barrier phases)
//   shared_bytes() -> bytes of __shared__ storage the poisoning covers
//
// launch checks every argument against the kernel's parameter types the way the PTX signature
// binds them on a GPU: a pointer parameter takes a C-contiguous NumPy array of exactly that
// dtype (writeable unless the parameter is const), or numpy.uintp(0) (a null pointer) for a
// const one; an i64 parameter takes a numpy.int64 scalar only (a Python int or an int32 would
// be packed with another size by CuPy). The GIL is released while the kernel runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime.hpp"

namespace py = pybind11;
using cfemu::Kind;

namespace {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::ptr_f32: return "float32*";
    case Kind::ptr_f64: return "float64*";
    case Kind::ptr_i64: return "int64*";
    case Kind::i64: return "int64";
  }
  return "?";
}

const cfemu::Entry& find_entry(const std::string& name) {
  for (const auto& fam : cfemu::families())
    for (const auto& e : fam.entries)
      if (e.name == name) return e;
  throw py::key_error("no emulated kernel named " + name);
}

struct Kernel {
  const cfemu::Entry* entry;
};

// One argument, converted: the pointer or the integer its kernel parameter slot points to.
union Slot {
  void* ptr;
  long long i64;
};

void convert(const cfemu::Entry& e, std::size_t i, py::handle arg, Slot& slot) {
  const cfemu::Param p = e.params[i];
  const std::string where = e.name + " argument " + std::to_string(i) + " (" +
                            kind_name(p.kind) + (p.is_const ? ", const" : "") + ")";
  py::module_ np = py::module_::import("numpy");
  const std::string got = py::str(py::type::of(arg).attr("__name__"));
  if (p.kind == Kind::i64) {
    if (!py::isinstance(arg, np.attr("int64")))
      throw py::type_error(where + ": want a numpy.int64, got " + got);
    slot.i64 = arg.cast<long long>();
    return;
  }
  if (py::isinstance(arg, np.attr("uintp")) && !py::isinstance<py::array>(arg)) {
    if (arg.cast<unsigned long long>() != 0)
      throw py::type_error(where + ": raw device pointers are not emulated");
    if (!p.is_const) throw py::type_error(where + ": null pointer for an output");
    slot.ptr = nullptr;
    return;
  }
  if (!py::isinstance<py::array>(arg))
    throw py::type_error(where + ": want a device array, got " + got);
  auto a = py::reinterpret_borrow<py::array>(arg);
  const py::dtype want = p.kind == Kind::ptr_f32   ? py::dtype::of<float>()
                         : p.kind == Kind::ptr_f64 ? py::dtype::of<double>()
                                                   : py::dtype::of<long long>();
  if (!a.dtype().is(want) && !a.dtype().equal(want))
    throw py::type_error(where + ": array of dtype " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::type_error(where + ": array is not C-contiguous");
  if (!p.is_const && !a.writeable()) throw py::type_error(where + ": output is read-only");
  slot.ptr = const_cast<void*>(a.data());
}

py::tuple launch(const Kernel& k, unsigned grid, unsigned block, const py::tuple& args,
                 int block_order, int thread_order, int poison, std::uint64_t seed) {
  static std::mutex one_at_a_time;  // the emulator's globals serve one launch
  const cfemu::Entry& e = *k.entry;
  if (args.size() != e.params.size())
    throw py::type_error(e.name + ": " + std::to_string(args.size()) +
                         " arguments passed, the kernel takes " +
                         std::to_string(e.params.size()));
  std::vector<Slot> slots(args.size());
  std::vector<void*> ptrs(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    convert(e, i, args[i], slots[i]);
    ptrs[i] = &slots[i];
  }
  cfemu::Options o;
  o.block_order = static_cast<cfemu::Order>(block_order);
  o.thread_order = static_cast<cfemu::Order>(thread_order);
  o.poison = poison;
  o.seed = seed;
  cfemu::Stats s;
  {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(one_at_a_time);
    s = cfemu::launch(e, grid, block, ptrs.data(), o);
  }
  return py::make_tuple(s.blocks, s.barriers);
}

}  // namespace

#ifndef CFEMU_MODULE
#define CFEMU_MODULE _cfemu
#endif

PYBIND11_MODULE(CFEMU_MODULE, m) {
  m.doc() = "CPU emulation of the CUDA execution model for convforge's kernels (tests only)";
  py::class_<Kernel>(m, "Kernel")
      .def_property_readonly("name", [](const Kernel& k) { return k.entry->name; })
      .def_property_readonly("params", [](const Kernel& k) {
        std::vector<std::pair<std::string, bool>> out;
        for (const auto& p : k.entry->params) out.emplace_back(kind_name(p.kind), p.is_const);
        return out;
      });
  m.def("families", [] {
    py::dict out;
    for (const auto& fam : cfemu::families()) {
      std::vector<std::string> names;
      for (const auto& e : fam.entries) names.push_back(e.name);
      out[py::str(fam.name)] = py::make_tuple(fam.source_sha256, names);
    }
    return out;
  });
  m.def("entry", [](const std::string& name) { return Kernel{&find_entry(name)}; });
  m.def("launch", &launch, py::arg("kernel"), py::arg("grid"), py::arg("block"),
        py::arg("args"), py::arg("block_order") = 0, py::arg("thread_order") = 0,
        py::arg("poison") = -1, py::arg("seed") = 1);
  m.def("shared_bytes", &cfemu::shared_bytes);
}
