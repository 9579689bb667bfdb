// Replays inputs through a fuzz target without libFuzzer (any compiler):
//     fuzz_<name>_replay FILE_OR_DIR...       run each file (each file of each directory)
//     fuzz_<name>_replay --write-seeds DIR    write balsa_fuzz_seeds() into DIR (seed-<n>)
// Exits 0 when every input ran without crashing; a crash aborts with the input's name printed.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    fs::create_directories(argv[2]);
    int n = 0;
    for (const std::string& s : balsa_fuzz_seeds()) {
      std::ofstream(fs::path(argv[2]) / ("seed-" + std::to_string(n++)), std::ios::binary) << s;
    }
    std::cout << "wrote " << n << " seeds to " << argv[2] << "\n";
    return 0;
  }
  size_t ran = 0;
  auto run = [&](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string data = ss.str();
    std::cerr << "input " << p.string() << " (" << data.size() << " bytes)\n";
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    ++ran;
  };
  for (int i = 1; i < argc; ++i) {
    const fs::path p = argv[i];
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) run(e.path());
    } else if (fs::exists(p)) {
      run(p);
    }
  }
  // Also the seeds themselves (valid inputs must never crash either).
  for (const std::string& s : balsa_fuzz_seeds()) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++ran;
  }
  std::cout << "ran " << ran << " inputs without a crash\n";
  return ran > 0 ? 0 : 1;
}
