/* moe/runtime/status.h - status codes of the runtime's C ABI.
 *
 * Every C entry point returns a moe_status_t; on failure the calling thread's
 * last error message says what went wrong, with the values involved. */
#ifndef MOE_RUNTIME_STATUS_H
#define MOE_RUNTIME_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_status_t {
  MOE_OK = 0,
  MOE_INVALID_ARGUMENT = 1, /* a caller passed a bad value */
  MOE_INVALID_FORMAT = 2,   /* an artifact, checkpoint or tensor file is malformed */
  MOE_VERSION_MISMATCH = 3, /* a file from another format version */
  MOE_NOT_FOUND = 4,        /* a named tensor, entry point or file is missing */
  MOE_UNAVAILABLE = 5,      /* a device, driver or library is not present */
  MOE_OUT_OF_MEMORY = 6,
  MOE_INTERNAL = 7
} moe_status_t;

/* A static, human-readable name for a status ("invalid argument"). */
const char *moe_status_name(moe_status_t status);

/* The message of the calling thread's last failure, or "" if none. */
const char *moe_last_error(void);

#ifdef __cplusplus
} /* extern "C" */

#include <string>

namespace moe::runtime {
/// Records `message` as the thread's last error and returns `status`.
moe_status_t fail(moe_status_t status, std::string message);
} // namespace moe::runtime
#endif

#endif /* MOE_RUNTIME_STATUS_H */
