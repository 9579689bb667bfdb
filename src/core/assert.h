// Assertions that protect data. They stay on in release builds: a replicated log that has
// broken an invariant must stop, not keep writing.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace balsa::detail {
[[noreturn]] void assertion_failed(const char* file, int line, const char* cond,
                                   const std::string& msg);
}

#define BALSA_ASSERT(cond, ...)                                                                \
  do {                                                                                         \
    if (!(cond)) [[unlikely]]                                                                  \
      ::balsa::detail::assertion_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
  } while (0)
