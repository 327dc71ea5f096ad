// status.cc - status names and the per-thread last error.
#include "moe/runtime/status.h"

#include <cstring>
#include <string>

namespace {
thread_local std::string lastError;
} // namespace

extern "C" const char *moe_status_name(moe_status_t status) {
  // C callers may pass any integer: read it as one (an out-of-range enum load is UB in C++).
  int code;
  std::memcpy(&code, &status, sizeof code);
  switch (code) {
  case MOE_OK:
    return "ok";
  case MOE_INVALID_ARGUMENT:
    return "invalid argument";
  case MOE_INVALID_FORMAT:
    return "invalid format";
  case MOE_VERSION_MISMATCH:
    return "version mismatch";
  case MOE_NOT_FOUND:
    return "not found";
  case MOE_UNAVAILABLE:
    return "unavailable";
  case MOE_OUT_OF_MEMORY:
    return "out of memory";
  case MOE_INTERNAL:
    return "internal error";
  }
  return "unknown status";
}

extern "C" const char *moe_last_error(void) { return lastError.c_str(); }

moe_status_t moe::runtime::fail(moe_status_t status, std::string message) {
  lastError = std::move(message);
  return status;
}
