// thread_pool.h - the kernels' persistent worker threads.
#ifndef MOE_RUNTIME_CPU_THREAD_POOL_H
#define MOE_RUNTIME_CPU_THREAD_POOL_H

#include <cstdint>
#include <functional>

namespace moe::runtime::cpu {

/// Runs fn(i) for i in [0, n) on the pool's threads (the caller is one of
/// them). Work items are handed out dynamically; fn must not throw.
void parallelFor(int64_t n, const std::function<void(int64_t)> &fn);

int numThreads();
void setNumThreads(int threads);

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_THREAD_POOL_H
