// Python binding of the FMA peak microbenchmark (kernel: peak.cpp, see peak.hpp):
//
//   fma_peak(dtype="float32", seconds=0.2, threads=None) -> dict
//
// Keys: dtype, isa, fma (False for baseline: separate multiply and add), threads,
// gflops (the peak: total GFLOP/s of the best vector width), gflops_per_thread (gflops /
// threads), per_thread (list: each thread's best-window GFLOP/s), gflops_median (total of the
// threads' median windows), bits (the best width), and for every width measured
// gflops_<bits> (total GFLOP/s at that width; AVX-512 measures 512 and 256 bits).
// seconds: measuring time per vector width; threads: default convforge's thread count.
#include <string>

#include "common.hpp"
#include "convforge/peak.hpp"

namespace convforge::bind {

void bind_peak(py::module_& m) {
  m.def(
      "fma_peak",
      [](const std::string& dtype, double seconds, std::optional<int> threads) {
        if (dtype != "float32" && dtype != "float64")
          throw py::value_error("fma_peak: dtype must be 'float32' or 'float64', got '" + dtype +
                                "'");
        if (!(seconds > 0 && seconds <= 60))
          throw py::value_error("fma_peak: seconds must be in (0, 60], got " +
                                std::to_string(seconds));
        if (threads && *threads < 1)
          throw py::value_error("fma_peak: threads must be >= 1, got " +
                                std::to_string(*threads));
        PeakResult r;
        {
          py::gil_scoped_release nogil;
          r = fma_peak(dtype == "float64", seconds, threads ? *threads : 0);
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
      },
      py::arg("dtype") = "float32", py::arg("seconds") = 0.2, py::arg("threads") = py::none(),
      "Measured multiply-add peak (GFLOP/s) with the current ISA; see csrc/bindings/peak.cpp.");
}

}  // namespace convforge::bind
