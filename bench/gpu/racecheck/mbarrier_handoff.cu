// Does compute-sanitizer's racecheck follow an mbarrier hand-off? Thread 0
// writes shared memory and arrives (release) on a barrier; warp 1 waits on
// its phase (acquire) and reads; then warp 1's lane 0 arrives on a second
// barrier after a warp sync and thread 0 waits on it before writing again:
// the pattern the warp-specialised GEMM uses for each stage's tile numbers
// (Kernels/GemmWgmmaWarpSpecialized.cpp). Correct under the PTX memory model;
// run it under racecheck to see whether it is reported.
//   nvcc -arch=sm_90a mbarrier_handoff.cu -o handoff && compute-sanitizer --tool racecheck ./handoff
#include <cstdio>

__device__ void arrive(unsigned bar) {
  asm volatile("{ .reg .b64 s; mbarrier.arrive.shared::cta.b64 s, [%0]; }" ::"r"(bar) : "memory");
}
__device__ void wait(unsigned bar, unsigned parity) {
  asm volatile("{ .reg .pred p; W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1; @!p bra W; }" ::"r"(bar),
               "r"(parity)
               : "memory");
}

__global__ void handoff(int *out, int rounds) {
  __shared__ __align__(8) unsigned long long bars[2];
  __shared__ int slot[4];
  unsigned full = (unsigned)__cvta_generic_to_shared(&bars[0]), empty = (unsigned)__cvta_generic_to_shared(&bars[1]);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(full));
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(empty));
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  int sum = 0;
  for (int r = 0; r < rounds; ++r) {
    if (threadIdx.x == 0) {
      wait(empty, (r + 1) & 1); // the previous round's reads are done
      for (int i = 0; i < 4; ++i)
        slot[i] = r * 4 + i;
      arrive(full);
    } else if (threadIdx.x >= 32) {
      wait(full, r & 1);
      for (int i = 0; i < 4; ++i)
        sum += slot[i];
      __syncwarp();
      if (threadIdx.x == 32)
        arrive(empty);
    }
  }
  if (threadIdx.x >= 32)
    out[threadIdx.x - 32] = sum;
}

int main() {
  int *out;
  const int rounds = 8;
  cudaMalloc(&out, 32 * sizeof(int));
  handoff<<<1, 64>>>(out, rounds);
  int host[32];
  cudaMemcpy(host, out, sizeof host, cudaMemcpyDeviceToHost);
  int expect = 0;
  for (int i = 0; i < rounds * 4; ++i)
    expect += i;
  std::printf("handoff: %s (%d, expected %d)\n", host[0] == expect ? "ok" : "WRONG", host[0], expect);
  return host[0] == expect ? 0 : 1;
}
