// thread_pool.cc - a small fork-join pool: workers sleep on a condition
// variable, a parallelFor publishes a job and every thread pulls indices from
// one atomic counter until the job is done.
#include "thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::runtime::cpu {
namespace {

class Pool {
public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i)
      workers.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    for (std::thread &t : workers)
      t.join();
  }
  int size() const { return static_cast<int>(workers.size()) + 1; }

  void run(int64_t n, const std::function<void(int64_t)> &fn) {
    if (n <= 0)
      return;
    if (workers.empty() || n == 1) {
      for (int64_t i = 0; i < n; ++i)
        fn(i);
      return;
    }
    std::lock_guard<std::mutex> serial(runMutex); // one job at a time
    {
      std::lock_guard<std::mutex> lock(mutex);
      job = &fn;
      total = n;
      next.store(0);
      active = static_cast<int>(workers.size());
      ++generation;
    }
    wake.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [&] { return active == 0; });
    job = nullptr;
  }

private:
  void drain() {
    for (int64_t i = next.fetch_add(1); i < total; i = next.fetch_add(1))
      (*job)(i);
  }

  void work() {
    uint64_t seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return stopping || generation != seen; });
        if (stopping)
          return;
        seen = generation;
      }
      drain();
      std::lock_guard<std::mutex> lock(mutex);
      if (--active == 0)
        done.notify_one();
    }
  }

  std::vector<std::thread> workers;
  std::mutex mutex, runMutex;
  std::condition_variable wake, done;
  const std::function<void(int64_t)> *job = nullptr;
  int64_t total = 0;
  std::atomic<int64_t> next{0};
  int active = 0;
  uint64_t generation = 0;
  bool stopping = false;
};

int defaultThreads() {
  if (const char *env = std::getenv("MOE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0)
      return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

std::mutex poolMutex;
std::unique_ptr<Pool> &pool() {
  static std::unique_ptr<Pool> p = std::make_unique<Pool>(defaultThreads());
  return p;
}

} // namespace

void parallelFor(int64_t n, const std::function<void(int64_t)> &fn) {
  Pool *p;
  {
    std::lock_guard<std::mutex> lock(poolMutex);
    p = pool().get();
  }
  p->run(n, fn);
}

int numThreads() {
  std::lock_guard<std::mutex> lock(poolMutex);
  return pool()->size();
}

void setNumThreads(int threads) {
  std::lock_guard<std::mutex> lock(poolMutex);
  if (threads < 1)
    threads = 1;
  if (pool()->size() != threads)
    pool() = std::make_unique<Pool>(threads);
}

} // namespace moe::runtime::cpu
