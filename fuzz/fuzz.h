// Shared by every fuzz target. A target defines
//     extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
//     std::vector<std::string> balsa_fuzz_seeds();   // valid inputs made with the real encoders
// and is built twice: with clang's libFuzzer (fuzz_<name>, scripts/fuzz.sh) and with the normal
// compiler and replay_main.cc (fuzz_<name>_replay), which runs every file of the target's seed
// corpus and regression inputs as a CTest, so a crash once found stays fixed in every build.
// A target "finds" something by crashing: an uncaught exception, a failed FUZZ_CHECK, or a
// sanitizer report. Refusals the code documents (a corruption error, a decode failure) are not
// findings.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

std::vector<std::string> balsa_fuzz_seeds();

namespace balsa::fuzz {

inline std::string_view as_view(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits `in` at each occurrence of `sep` (the fuzzer learns the separator from the seeds).
inline std::vector<std::string_view> split(std::string_view in, std::string_view sep, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = in.find(sep);
    if (at == std::string_view::npos) break;
    parts.push_back(in.substr(0, at));
    in.remove_prefix(at + sep.size());
  }
  parts.push_back(in);
  return parts;
}

}  // namespace balsa::fuzz
