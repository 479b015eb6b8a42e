// The compiled core: convforge._core. Each op family registers its functions from its own
// binding file; this file holds the module-level facts (version, ISA, threads).
#include <pybind11/pybind11.h>

#include "convforge/cpu.hpp"

namespace py = pybind11;

namespace convforge::bind {
void bind_conv(py::module_& m);    // bindings/conv.cpp: conv2d forward/backward, im2col/col2im
void bind_pool(py::module_& m);    // bindings/pool.cpp: pooling forward/backward
void bind_norm(py::module_& m);    // bindings/norm.cpp: batch normalisation
void bind_elementwise(py::module_& m);  // bindings/elementwise.cpp: dropout, activations
void bind_loss(py::module_& m);    // bindings/loss.cpp: softmax cross-entropy
void bind_optim(py::module_& m);  // bindings/optim.cpp: SGD, Adam, RMSprop updates
void bind_buffer_cache(py::module_& m);  // bindings/buffer_cache.cpp: NumPy step buffers
void bind_plan(py::module_& m);    // bindings/plan.cpp: compiled step plans
}  // namespace convforge::bind

#ifndef CONVFORGE_VERSION
#define CONVFORGE_VERSION "dev"
#endif

PYBIND11_MODULE(_core, m) {
  using namespace convforge;
  m.doc() = "convforge compiled CPU kernels (C++17/OpenMP, run-time ISA dispatch)";
  m.attr("__version__") = CONVFORGE_VERSION;
  m.attr("has_openmp") = has_openmp();
  m.def("isa", [] { return std::string(isa_name(current_isa())); },
        "Instruction set the kernels dispatch on now.");
  m.def("detected_isa", [] { return std::string(isa_name(detected_isa())); },
        "Best instruction set of this CPU (lowered by CONVFORGE_ISA).");
  m.def("fast_gathers", &fast_gathers,
        "Whether the AVX-512 Winograd kernels gather input patches with vector gathers (Intel) "
        "or copy them with scalar loads (AMD); CONVFORGE_GATHERS=0|1 overrides. Same results.");
  m.def("narrow_avx512", &narrow_avx512,
        "Whether the CPU runs AVX-512 on 256-bit halves (AMD Zen 4): the channel-vector conv "
        "kernels (direct_kvec: forward, weight gradient of 5x5 kernels) of layers with one "
        "AVX-512 vector of output channels then use the AVX2 copy's two 256-bit vectors; "
        "CONVFORGE_NARROW_AVX512=0|1 overrides. Same results.");
  m.def("set_isa", [](const std::string& name) {
    Isa isa = name == "avx512" ? Isa::avx512 : name == "avx2" ? Isa::avx2 : Isa::baseline;
    if (name != "avx512" && name != "avx2" && name != "baseline")
      throw py::value_error("isa must be 'baseline', 'avx2' or 'avx512', got '" + name + "'");
    if (!set_isa(isa))
      throw py::value_error("this CPU does not support isa '" + name + "'");
  }, py::arg("name"), "Force a (lower) instruction set, e.g. to test every code path.");
  m.def("get_num_threads", &max_threads,
        "Threads the kernels use now (1 in a fork child, see in_fork_child).");
  m.def("requested_num_threads", &requested_threads,
        "The count last set by set_num_threads (or the load-time default).");
  m.def("in_fork_child", &in_fork_child,
        "True in a child of fork(): OpenMP teams would hang there, kernels run on one thread.");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  }, py::arg("n"));
  bind::bind_conv(m);
  bind::bind_pool(m);
  bind::bind_norm(m);
  bind::bind_elementwise(m);
  bind::bind_plan(m);
  bind::bind_loss(m);
  bind::bind_optim(m);
  bind::bind_buffer_cache(m);
}
