// S6Scan (Mamba's selective scan) on the GPU: a prefill kernel and a decode-step kernel.
//
// Semantics: docs/s6scan.md (mamba_ssm 2.3 selective_scan_ref plus an initial state).
// Activations (u, delta, B, C, z, y) are fp32, fp16 or bf16; A, D, delta_bias and the states
// are fp32; all arithmetic is fp32.
//
// This file includes no header at all, so the same source compiles with nvcc (build.rs) and
// with NVRTC at run time (the fallback when no nvcc was found at build time).
//
// Prefill design. The roofline is the exponential unit: one exp per (b, d, l, n). A lane owns
// NPL states (n) of one channel; LANES lanes share a channel, so the kernel is parallel over
// B x D x N without splitting L (splitting L would cost a second exp per element). A block owns
// CPB channels of one group and walks L in tiles of TT steps:
//   stage   all threads load the tile of u, delta, z (coalesced), B and C (shared by the block's
//           channels), apply delta_bias + softplus once per (d, l), convert to fp32 in smem;
//   scan    each lane runs its NPL recurrences over the tile with ex2.approx, accumulating its
//           part of y; the LANES partial sums are reduced with a transposing butterfly so each
//           lane ends with whole y values, applies D and the z gate, and writes y to smem;
//   store   all threads write y coalesced.
// Steps past L are staged with delta = 0 and delta*u = 0, which leaves the state unchanged, so
// the scan loop needs no bounds. The next tile's loads are issued before the scan (registers),
// hiding their latency behind the arithmetic.

typedef unsigned short s6_u16;
typedef long long s6_i64;
typedef unsigned long long s6_u64;

// Kernel parameters, passed by value. Mirrors `KernelParams` in plugin/cuda/params.rs: all
// fields 8 bytes, no padding.
struct S6Params {
    s6_u64 u, delta, A, B, C, D, z, delta_bias, initial_state, y, last_state;
    s6_i64 batch, dim, seqlen, dstate, groups;
    // Element strides of u, delta, z and y (one layout): batch, channel, time.
    s6_i64 act_sb, act_sc, act_st;
    // Element strides of B and C: batch, group, state, time.
    s6_i64 bc_sb, bc_sg, bc_sn, bc_st;
    // bit 0: delta_softplus.
    s6_i64 flags;
};

#define S6_LOG2E 1.4426950408889634f
#define S6_LN2 0.6931471805599453f

// ---------------------------------------------------------------------------------------------
// Element types: 0 = fp32, 1 = fp16, 2 = bf16.

template <int DT> struct S6Elem;
template <> struct S6Elem<0> {
    typedef float T;
    static __device__ __forceinline__ float load(const float* p) { return __ldg(p); }
    static __device__ __forceinline__ void store(float* p, float v) { *p = v; }
};
template <> struct S6Elem<1> {
    typedef s6_u16 T;
    static __device__ __forceinline__ float load(const s6_u16* p) {
        s6_u16 h = __ldg(p);
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
        return f;
    }
    static __device__ __forceinline__ void store(s6_u16* p, float v) {
        s6_u16 h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
        *p = h;
    }
};
template <> struct S6Elem<2> {
    typedef s6_u16 T;
    static __device__ __forceinline__ float load(const s6_u16* p) {
        return __uint_as_float(((unsigned)__ldg(p)) << 16);
    }
    static __device__ __forceinline__ void store(s6_u16* p, float v) {
        // Round to nearest even, NaN kept quiet (cvt.rn.bf16.f32 needs sm_80; this runs on all).
        unsigned b = __float_as_uint(v);
        s6_u16 h;
        if ((b & 0x7fffffffu) > 0x7f800000u) {
            h = (s6_u16)((b >> 16) | 0x40u);
        } else {
            b += 0x7fffu + ((b >> 16) & 1u);
            h = (s6_u16)(b >> 16);
        }
        *p = h;
    }
};

// ---------------------------------------------------------------------------------------------
// Math on the special-function unit.

__device__ __forceinline__ float s6_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float s6_lg2(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float s6_rcp(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// softplus with mamba_ssm's threshold: x > 20 -> x. log(1 + e) for small e loses e's bits in
// 1 + e, so below e = 0.03 a series is used (error < e^5/5, relative < 2e-7).
__device__ __forceinline__ float s6_softplus(float x) {
    float e = s6_ex2(x * S6_LOG2E);
    float series = e * (1.f - e * (0.5f - e * (0.33333334f - e * 0.25f)));
    float lg = s6_lg2(1.f + e) * S6_LN2;
    float r = e < 0.03f ? series : lg;
    return x > 20.f ? x : r;
}

// z * sigmoid(z). For z < -88 exp overflows to inf and the result is -0, as it should be.
__device__ __forceinline__ float s6_silu(float z) {
    return z * s6_rcp(1.f + s6_ex2(-z * S6_LOG2E));
}

__device__ __forceinline__ float s6_delta(float dv, float bias, bool softplus) {
    dv += bias;
    return softplus ? s6_softplus(dv) : dv;
}

// ---------------------------------------------------------------------------------------------
// Transposing butterfly over the LANES lanes of a channel. v[r * CNT + k] holds, for each of the
// 16 / LANES groups r, CNT partial sums; each round halves CNT: a lane keeps the half its bit
// selects and adds its partner's copy of that half. At the end v[r] is the full sum for
// k = lane (mod LANES). Written as a template so every index is a constant (registers only).
template <int LANES, int CNT>
struct S6Bfly {
    static __device__ __forceinline__ void run(float (&v)[16], int j) {
        constexpr int R = 16 / LANES;
        constexpr int H = CNT / 2;
        const bool upper = (j & H) != 0;
        float w[R * H];
#pragma unroll
        for (int r = 0; r < R; ++r) {
#pragma unroll
            for (int k = 0; k < H; ++k) {
                float lo = v[r * CNT + k];
                float hi = v[r * CNT + k + H];
                float send = upper ? lo : hi;
                float keep = upper ? hi : lo;
                w[r * H + k] = keep + __shfl_xor_sync(0xffffffffu, send, H);
            }
        }
#pragma unroll
        for (int i = 0; i < R * H; ++i) v[i] = w[i];
        S6Bfly<LANES, H>::run(v, j);
    }
};
template <int LANES>
struct S6Bfly<LANES, 1> {
    static __device__ __forceinline__ void run(float (&)[16], int) {}
};

// ---------------------------------------------------------------------------------------------
// Prefill.

template <int DT, int LANES, int NPL, int CPB, int TT>
__device__ __forceinline__ void s6_prefill(const S6Params& p) {
    typedef S6Elem<DT> E;
    typedef typename E::T T;
    constexpr int NT = LANES * NPL;          // states a channel's lanes hold (>= N)
    constexpr int THREADS = CPB * LANES;
    constexpr int TTP = TT + 4;              // row pitch: keeps float4 alignment, spreads banks
    constexpr int EA = (CPB * TT) / THREADS;  // activation elements each thread stages
    constexpr int EB = (NT * TT) / THREADS;   // B (and C) elements each thread stages
    static_assert((CPB * TT) % THREADS == 0, "activation tile must split evenly");
    static_assert((NT * TT) % THREADS == 0, "B/C tile must split evenly");
    static_assert(TT % 16 == 0, "tiles are scanned 16 steps at a time");
    static_assert(16 % LANES == 0, "LANES divides 16");

    __shared__ __align__(16) float s_dl[CPB][TTP];  // delta after bias/softplus
    __shared__ __align__(16) float s_du[CPB][TTP];  // delta * u
    __shared__ __align__(16) float s_u[CPB][TTP];
    __shared__ __align__(16) float s_zy[CPB][TTP];  // z in, y out
    __shared__ __align__(16) float s_b[NT][TTP];
    __shared__ __align__(16) float s_c[NT][TTP];

    const int tid = threadIdx.x;
    const s6_i64 D = p.dim, L = p.seqlen, N = p.dstate;
    const s6_i64 dg = D / p.groups;  // channels per group
    const s6_i64 blocks_per_group = (dg + CPB - 1) / CPB;
    const s6_i64 g = blockIdx.x / blocks_per_group;
    const s6_i64 cb = blockIdx.x % blocks_per_group;
    const s6_i64 b = blockIdx.y;
    const s6_i64 d0 = g * dg + cb * CPB;                     // first channel of this block
    const int nch = (int)((dg - cb * CPB) < CPB ? (dg - cb * CPB) : CPB);  // valid channels

    const T* __restrict__ gu = reinterpret_cast<const T*>(p.u);
    const T* __restrict__ gdelta = reinterpret_cast<const T*>(p.delta);
    const T* __restrict__ gz = reinterpret_cast<const T*>(p.z);
    const T* __restrict__ gB = reinterpret_cast<const T*>(p.B);
    const T* __restrict__ gC = reinterpret_cast<const T*>(p.C);
    T* __restrict__ gy = reinterpret_cast<T*>(p.y);
    const float* __restrict__ gbias = reinterpret_cast<const float*>(p.delta_bias);
    const float* __restrict__ gD = reinterpret_cast<const float*>(p.D);
    const bool softplus = (p.flags & 1) != 0;
    const bool has_z = p.z != 0;

    const s6_i64 act_base = b * p.act_sb + d0 * p.act_sc;
    const s6_i64 bc_base = b * p.bc_sb + g * p.bc_sg;
    const bool act_time_major = p.act_st == 1;  // (B, D, L): time is the fast axis
    const bool bc_time_major = p.bc_st == 1;

    // Staging map: element k of this thread -> (row, t) of the tile, fast axis along memory.
    auto act_ct = [&](int k, int& c, int& t) {
        int idx = k * THREADS + tid;
        if (act_time_major) { t = idx % TT; c = idx / TT; } else { c = idx % CPB; t = idx / CPB; }
    };
    auto bc_nt = [&](int k, int& n, int& t) {
        int idx = k * THREADS + tid;
        if (bc_time_major) { t = idx % TT; n = idx / TT; } else { n = idx % NT; t = idx / NT; }
    };

    float r_u[EA], r_d[EA], r_z[EA], r_b[EB], r_c[EB];
    auto load_tile = [&](s6_i64 t0) {
#pragma unroll
        for (int k = 0; k < EA; ++k) {
            int c, t;
            act_ct(k, c, t);
            bool ok = c < nch && t0 + t < L;
            s6_i64 off = act_base + c * p.act_sc + (t0 + t) * p.act_st;
            r_u[k] = ok ? E::load(gu + off) : 0.f;
            r_d[k] = ok ? E::load(gdelta + off) : 0.f;
            r_z[k] = (ok && has_z) ? E::load(gz + off) : 0.f;
        }
#pragma unroll
        for (int k = 0; k < EB; ++k) {
            int n, t;
            bc_nt(k, n, t);
            bool ok = n < N && t0 + t < L;
            s6_i64 off = bc_base + n * p.bc_sn + (t0 + t) * p.bc_st;
            r_b[k] = ok ? E::load(gB + off) : 0.f;
            r_c[k] = ok ? E::load(gC + off) : 0.f;
        }
    };

    // Per-lane state.
    const int c_l = tid / LANES;   // channel row of this lane
    const int j = tid % LANES;     // lane within the channel
    const bool ch_ok = c_l < nch;
    const s6_i64 d_l = d0 + c_l;
    float a2[NPL], x[NPL];
#pragma unroll
    for (int k = 0; k < NPL; ++k) {
        int n = j * NPL + k;
        bool ok = ch_ok && n < N;
        a2[k] = ok ? reinterpret_cast<const float*>(p.A)[d_l * N + n] * S6_LOG2E : 0.f;
        x[k] = (ok && p.initial_state)
                   ? reinterpret_cast<const float*>(p.initial_state)[(b * D + d_l) * N + n]
                   : 0.f;
    }
    const float dskip = (ch_ok && gD) ? gD[d_l] : 0.f;

    // Bias of the channel each staging element belongs to (the element map does not move the
    // channel between tiles).
    float r_bias[EA];
#pragma unroll
    for (int k = 0; k < EA; ++k) {
        int c, t;
        act_ct(k, c, t);
        r_bias[k] = (gbias && c < nch) ? gbias[d0 + c] : 0.f;
    }

    load_tile(0);
    for (s6_i64 t0 = 0; t0 < L; t0 += TT) {
        __syncthreads();  // the previous tile's store phase is done with smem
#pragma unroll
        for (int k = 0; k < EA; ++k) {
            int c, t;
            act_ct(k, c, t);
            float dl = s6_delta(r_d[k], r_bias[k], softplus);
            if (t0 + t >= L) dl = 0.f;  // padding steps must leave the state unchanged
            s_dl[c][t] = dl;
            s_du[c][t] = dl * r_u[k];
            s_u[c][t] = r_u[k];
            s_zy[c][t] = r_z[k];
        }
#pragma unroll
        for (int k = 0; k < EB; ++k) {
            int n, t;
            bc_nt(k, n, t);
            s_b[n][t] = r_b[k];
            s_c[n][t] = r_c[k];
        }
        __syncthreads();
        if (t0 + TT < L) load_tile(t0 + TT);  // in flight during the scan below

        const int valid = (int)((L - t0) < TT ? (L - t0) : TT);
        const int nsub = (valid + 15) / 16;
        for (int s = 0; s < nsub; ++s) {
            float yp[16];
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int tq = s * 16 + q * 4;
                float4 dl4 = *reinterpret_cast<const float4*>(&s_dl[c_l][tq]);
                float4 du4 = *reinterpret_cast<const float4*>(&s_du[c_l][tq]);
                float dls[4] = {dl4.x, dl4.y, dl4.z, dl4.w};
                float dus[4] = {du4.x, du4.y, du4.z, du4.w};
                float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int k = 0; k < NPL; ++k) {
                    const int n = j * NPL + k;
                    float4 b4 = *reinterpret_cast<const float4*>(&s_b[n][tq]);
                    float4 c4 = *reinterpret_cast<const float4*>(&s_c[n][tq]);
                    float bs[4] = {b4.x, b4.y, b4.z, b4.w};
                    float cs[4] = {c4.x, c4.y, c4.z, c4.w};
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        float e = s6_ex2(dls[i] * a2[k]);
                        x[k] = fmaf(e, x[k], dus[i] * bs[i]);
                        acc[i] = fmaf(x[k], cs[i], acc[i]);
                    }
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) yp[q * 4 + i] = acc[i];
            }
            // Transposing butterfly: sums the LANES partials of each step; afterwards value r of
            // lane j is y at step s*16 + r*LANES + j.
            S6Bfly<LANES, LANES>::run(yp, j);
#pragma unroll
            for (int r = 0; r < 16 / LANES; ++r) {
                const int t = s * 16 + r * LANES + j;
                float yv = fmaf(dskip, s_u[c_l][t], yp[r]);
                if (has_z) yv *= s6_silu(s_zy[c_l][t]);
                s_zy[c_l][t] = yv;
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < EA; ++k) {
            int c, t;
            act_ct(k, c, t);
            if (c < nch && t0 + t < L) {
                E::store(gy + act_base + c * p.act_sc + (t0 + t) * p.act_st, s_zy[c][t]);
            }
        }
    }

    if (p.last_state && ch_ok) {
        float* ls = reinterpret_cast<float*>(p.last_state);
#pragma unroll
        for (int k = 0; k < NPL; ++k) {
            int n = j * NPL + k;
            if (n < N) ls[(b * D + d_l) * N + n] = x[k];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decode step (L = 1): LANES lanes per channel, each looping over its states; a shuffle sums y.

template <int DT, int LANES>
__device__ __forceinline__ void s6_decode(const S6Params& p) {
    typedef S6Elem<DT> E;
    typedef typename E::T T;
    const s6_i64 D = p.dim, N = p.dstate;
    const s6_i64 gid = (s6_i64)blockIdx.x * blockDim.x + threadIdx.x;
    const s6_i64 ch = gid / LANES;  // b * D + d
    const int j = (int)(gid % LANES);
    const bool ok = ch < p.batch * D;
    float yv = 0.f;
    s6_i64 act_off = 0, b = 0, d = 0;
    if (ok) {
        b = ch / D;
        d = ch % D;
        const s6_i64 g = d / (D / p.groups);
        act_off = b * p.act_sb + d * p.act_sc;
        const float bias = p.delta_bias ? reinterpret_cast<const float*>(p.delta_bias)[d] : 0.f;
        const float dl = s6_delta(E::load(reinterpret_cast<const T*>(p.delta) + act_off), bias,
                                  (p.flags & 1) != 0);
        const float uv = E::load(reinterpret_cast<const T*>(p.u) + act_off);
        const float du = dl * uv;
        const s6_i64 bc_off = b * p.bc_sb + g * p.bc_sg;
        const float* A = reinterpret_cast<const float*>(p.A) + d * N;
        const float* h0 = reinterpret_cast<const float*>(p.initial_state);
        float* h1 = reinterpret_cast<float*>(p.last_state);
        for (s6_i64 n = j; n < N; n += LANES) {
            const float bv = E::load(reinterpret_cast<const T*>(p.B) + bc_off + n * p.bc_sn);
            const float cv = E::load(reinterpret_cast<const T*>(p.C) + bc_off + n * p.bc_sn);
            float xv = h0 ? h0[ch * N + n] : 0.f;
            xv = fmaf(s6_ex2(dl * A[n] * S6_LOG2E), xv, du * bv);
            yv = fmaf(xv, cv, yv);
            if (h1) h1[ch * N + n] = xv;
        }
    }
#pragma unroll
    for (int o = LANES / 2; o >= 1; o /= 2) yv += __shfl_xor_sync(0xffffffffu, yv, o);
    if (ok && j == 0) {
        const float uv = E::load(reinterpret_cast<const T*>(p.u) + act_off);
        if (p.D) yv = fmaf(reinterpret_cast<const float*>(p.D)[d], uv, yv);
        if (p.z) yv *= s6_silu(E::load(reinterpret_cast<const T*>(p.z) + act_off));
        E::store(reinterpret_cast<T*>(p.y) + act_off, yv);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points. Names: s6_prefill_<dtype>_l<LANES>_p<NPL>, s6_decode_<dtype>_l<LANES>.
// plugin/cuda/kernels.rs lists the same table; block sizes are CPB * LANES and 128.

#define S6_PREFILL(NAME, DT, LANES, NPL, CPB, TT)                                    \
    extern "C" __global__ void __launch_bounds__(CPB * LANES)                        \
        s6_prefill_##NAME##_l##LANES##_p##NPL(S6Params p) {                          \
        s6_prefill<DT, LANES, NPL, CPB, TT>(p);                                      \
    }

#define S6_PREFILL_ALL(NAME, DT)                                                     \
    S6_PREFILL(NAME, DT, 16, 1, 8, 64)                                               \
    S6_PREFILL(NAME, DT, 8, 2, 16, 64)                                               \
    S6_PREFILL(NAME, DT, 4, 4, 32, 32)                                               \
    S6_PREFILL(NAME, DT, 16, 2, 8, 64)                                               \
    S6_PREFILL(NAME, DT, 16, 4, 8, 64)                                               \
    S6_PREFILL(NAME, DT, 16, 8, 8, 32)                                               \
    S6_PREFILL(NAME, DT, 16, 16, 8, 16)


#define S6_DECODE(NAME, DT, LANES)                                                   \
    extern "C" __global__ void __launch_bounds__(128)                                \
        s6_decode_##NAME##_l##LANES(S6Params p) {                                    \
        s6_decode<DT, LANES>(p);                                                     \
    }

#define S6_DECODE_ALL(NAME, DT) S6_DECODE(NAME, DT, 4) S6_DECODE(NAME, DT, 8) S6_DECODE(NAME, DT, 16)

S6_PREFILL_ALL(f32, 0)
S6_PREFILL_ALL(f16, 1)
S6_PREFILL_ALL(bf16, 2)
S6_DECODE_ALL(f32, 0)
S6_DECODE_ALL(f16, 1)
S6_DECODE_ALL(bf16, 2)
