// Exp-unit throughput of this GPU, the roofline of docs/benchmarks.md: ex2.approx per SM per
// clock over 8 independent chains per thread, alone (mix=0) and with 2 FMAs beside each (mix=1).
// Built and run by `STEPS=exprate scripts/bench_gpu.sh` on the GPU machine.
#include <cstdio>
__device__ __forceinline__ float ex2(float x) { float y; asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
template <int MIX>
__global__ void k(float* out, int iters, float c) {
  float x[8];
  for (int i = 0; i < 8; ++i) x[i] = -0.001f * (threadIdx.x + i);
  float acc = 0.f;
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float e = ex2(x[i] * c);
      if (MIX) { acc = fmaf(e, acc, x[i]); x[i] = fmaf(e, 1e-7f, x[i]); }
      else x[i] = e - 1.0f;
    }
  }
  float s = acc; for (int i = 0; i < 8; ++i) s += x[i];
  if (s == 12345.f) out[0] = s;
}
int main() {
  int sms; cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  int clk; cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, 0);
  float* out; cudaMalloc(&out, 4);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  int iters = 4096, blocks = sms * 8, threads = 256;
  for (int mix = 0; mix < 2; ++mix) {
    for (int rep = 0; rep < 3; ++rep) {
      cudaEventRecord(a);
      if (mix) k<1><<<blocks, threads>>>(out, iters, 0.5f); else k<0><<<blocks, threads>>>(out, iters, 0.5f);
      cudaEventRecord(b); cudaEventSynchronize(b);
      float ms; cudaEventElapsedTime(&ms, a, b);
      double ops = (double)blocks * threads * iters * 8;
      printf("mix=%d: %.3f ms, %.2f ex2 per SM per clock at %d MHz\n", mix, ms, ops / (ms * 1e-3) / sms / (clk * 1e3), clk / 1000);
    }
  }
  return 0;
}
