// Assertions that protect data. They stay on in release builds: a replicated log that has
// broken an invariant must stop, not keep writing.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace balsa {
// What happens when an invariant fails: by default print and abort. The simulator installs a
// handler that throws instead, so it can report the seed that broke the invariant. A handler
// must not return.
using AssertionHandler = void (*)(const char* file, int line, const char* cond, const std::string& msg);
void set_assertion_handler(AssertionHandler handler);
}  // namespace balsa

namespace balsa::detail {
[[noreturn]] void assertion_failed(const char* file, int line, const char* cond,
                                   const std::string& msg);
}

#define BALSA_ASSERT(cond, ...)                                                                \
  do {                                                                                         \
    if (!(cond)) [[unlikely]]                                                                  \
      ::balsa::detail::assertion_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
  } while (0)
