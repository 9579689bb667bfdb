#include "core/assert.h"

#include <atomic>

namespace balsa {
namespace {
std::atomic<AssertionHandler> g_handler{nullptr};
}

void set_assertion_handler(AssertionHandler handler) { g_handler.store(handler); }

namespace detail {
void assertion_failed(const char* file, int line, const char* cond, const std::string& msg) {
  if (AssertionHandler h = g_handler.load()) h(file, line, cond, msg);
  std::fprintf(stderr, "balsa: invariant violated at %s:%d: %s: %s\n", file, line, cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail
}  // namespace balsa
