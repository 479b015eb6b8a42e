// race_harness.cpp: replays recorded kernel launches with one OS thread per CUDA thread, for
// ThreadSanitizer (which cannot be loaded into Python). Built by tests/cuda/cuda_emu.py with
// -DCFEMU_TSAN=ON from the same generated kernel units as the _cfemu module, runtime.cpp in its
// CFEMU_OS_THREADS form (std::barrier per block).
//
//   race_harness REPLAY OUT
// REPLAY (written by cuda_emu.write_replay): "cfemu-replay 1", then per launch a line
// "launch NAME GRID BLOCK NARGS" and one record per argument: "i64 V", "null", or
// "array ELEM_BYTES COUNT" followed by the raw bytes. OUT gets, per launch, every array argument
// after the launch in the same "array" record form, for comparison with the fiber emulator.
// Exit status: 0 when all ran (ThreadSanitizer sets its own status when it reports a race).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime.hpp"

namespace {

const cfemu::Entry& find_entry(const std::string& name) {
  for (const auto& fam : cfemu::families())
    for (const auto& e : fam.entries)
      if (e.name == name) return e;
  throw std::runtime_error("no kernel named " + name);
}

std::string line_of(std::istream& in) {
  std::string s;
  if (!std::getline(in, s)) throw std::runtime_error("replay file ends early");
  return s;
}

// One argument: an array (bytes in 8-byte words, so any element type is aligned) or a scalar.
struct Arg {
  std::vector<long long> words;
  std::size_t bytes = 0, elem = 0;
  long long value = 0;
  void* ptr = nullptr;  // what the slot points to: `ptr` (array/null) or `value` (i64)
  bool scalar = false;
};

void write_array(std::ostream& out, const Arg& a) {
  out << "array " << a.elem << " " << a.bytes / a.elem << "\n";
  out.write(reinterpret_cast<const char*>(a.words.data()), static_cast<std::streamsize>(a.bytes));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: race_harness REPLAY OUT\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    std::ofstream out(argv[2], std::ios::binary);
    if (line_of(in) != "cfemu-replay 1") throw std::runtime_error("not a replay file");
    int launches = 0;
    for (std::string head; std::getline(in, head);) {
      std::istringstream h(head);
      std::string word, name;
      unsigned grid = 0, block = 0;
      std::size_t nargs = 0;
      h >> word >> name >> grid >> block >> nargs;
      if (word != "launch") throw std::runtime_error("bad record: " + head);
      const cfemu::Entry& e = find_entry(name);
      if (nargs != e.params.size()) throw std::runtime_error(name + ": wrong argument count");
      std::vector<Arg> args(nargs);
      std::vector<void*> slots(nargs);
      // i: arguments of the launch
      for (std::size_t i = 0; i < nargs; ++i) {
        std::istringstream r(line_of(in));
        std::string kind;
        r >> kind;
        Arg& a = args[i];
        if (kind == "i64") {
          r >> a.value;
          a.scalar = true;
          slots[i] = &a.value;
        } else if (kind == "null") {
          slots[i] = &a.ptr;
        } else if (kind == "array") {
          std::size_t count = 0;
          r >> a.elem >> count;
          a.bytes = a.elem * count;
          a.words.resize((a.bytes + 7) / 8 + 1);
          in.read(reinterpret_cast<char*>(a.words.data()), static_cast<std::streamsize>(a.bytes));
          a.ptr = a.words.data();
          slots[i] = &a.ptr;
        } else {
          throw std::runtime_error("bad argument record in " + name);
        }
      }
      cfemu::launch(e, grid, block, slots.data(), cfemu::Options{});
      for (const Arg& a : args)
        if (!a.scalar && a.ptr) write_array(out, a);
      ++launches;
    }
    std::printf("replayed %d launches\n", launches);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "race_harness: %s\n", ex.what());
    return 1;
  }
  return 0;
}
