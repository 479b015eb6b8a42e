// convforge._peak: the FMA peak microbenchmark (peak.cpp), a module of its own so that the
// production _core carries no benchmark code. Used by bench/ for "% of peak":
//
//   fma_peak(dtype="float32", seconds=0.2, threads=1, isa=None) -> dict
//
// isa: "baseline" | "avx2" | "avx512" (bench passes _core.isa(), the ISA the kernels run on);
// None: the best this CPU has (lowered by CONVFORGE_ISA). This module has its own copy of the
// runtime (csrc/runtime/cpu.cpp), so _core.set_isa does not reach it: the ISA is an argument.
// Keys: dtype, isa, fma (False for baseline: separate multiply and add), threads,
// gflops (the peak: total GFLOP/s of the best vector width), gflops_per_thread (gflops /
// threads), per_thread (list: each thread's best-window GFLOP/s), gflops_median (total of the
// threads' median windows), bits (the best width), and for every width measured
// gflops_<bits> (total GFLOP/s at that width; AVX-512 measures 512 and 256 bits).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "convforge/cpu.hpp"
#include "peak.hpp"

namespace py = pybind11;

namespace convforge {
namespace {

Isa parse_isa(const std::string& name) {
  if (name == "baseline") return Isa::baseline;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw py::value_error("fma_peak: isa must be 'baseline', 'avx2' or 'avx512', got '" + name +
                        "'");
}

py::dict fma_peak_py(const std::string& dtype, double seconds, int threads,
                     const std::optional<std::string>& isa) {
  if (dtype != "float32" && dtype != "float64")
    throw py::value_error("fma_peak: dtype must be 'float32' or 'float64', got '" + dtype + "'");
  if (!(seconds > 0 && seconds <= 60))
    throw py::value_error("fma_peak: seconds must be in (0, 60], got " + std::to_string(seconds));
  if (threads < 1)
    throw py::value_error("fma_peak: threads must be >= 1, got " + std::to_string(threads));
  const Isa want = isa ? parse_isa(*isa) : detected_isa();
  if (!set_isa(want))
    throw py::value_error("fma_peak: this CPU does not support isa '" + *isa + "'");
  PeakResult r;
  {
    py::gil_scoped_release nogil;
    r = fma_peak(dtype == "float64", seconds, threads);
  }
  const PeakWidth& best = r.widths[r.best];
  py::dict d;
  d["dtype"] = dtype;
  d["isa"] = std::string(r.isa);
  d["fma"] = r.fma;
  d["threads"] = r.threads;
  d["gflops"] = best.gflops;
  d["gflops_per_thread"] = best.gflops / r.threads;
  d["per_thread"] = best.per_thread;
  d["gflops_median"] = best.gflops_median;
  d["bits"] = best.bits;
  for (const PeakWidth& w : r.widths) d[("gflops_" + std::to_string(w.bits)).c_str()] = w.gflops;
  return d;
}

}  // namespace
}  // namespace convforge

PYBIND11_MODULE(_peak, m) {
  m.doc() = "convforge's FMA peak microbenchmark (bench/ only; not part of the kernels)";
  m.def("fma_peak", &convforge::fma_peak_py, py::arg("dtype") = "float32",
        py::arg("seconds") = 0.2, py::arg("threads") = 1, py::arg("isa") = py::none(),
        "Measured multiply-add peak (GFLOP/s) on `threads` threads with `isa`; see "
        "csrc/peak/module.cpp.");
}
