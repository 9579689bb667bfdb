#include "core/assert.h"

namespace balsa::detail {
void assertion_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "balsa: invariant violated at %s:%d: %s: %s\n", file, line, cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace balsa::detail
