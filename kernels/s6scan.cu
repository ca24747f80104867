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
// NPL states of one channel, strided (lane j holds n = j, j + LANES, ...: the lanes of a channel
// then read consecutive rows of staged B and C, free of bank conflicts); LANES lanes share a channel, so the kernel is parallel over
// B x D x N without splitting L (splitting L would cost a second exp per element). A block owns
// CPB channels of one group and walks L in tiles of TT steps:
//   stage   all threads load the tile of u, delta, z (coalesced), B and C (shared by the block's
//           channels), apply delta_bias + softplus once per (d, l), convert to fp32 in smem;
//   scan    each lane runs its NPL recurrences over the tile with ex2.approx and leaves its
//           partial y (sum over its states) per step in smem, 4 steps per 16-byte store;
//   reduce  each thread sums the LANES partials of 4 outputs, applies D and the z gate and
//           stores y.
// Steps past L are staged with delta = 0 and delta*u = 0, which leaves the state unchanged, so
// the scan needs no bounds inside a 4-step group. The next tile's loads are issued before the
// scan (registers), hiding their latency behind the arithmetic.
//
// For N <= 16 and one pass the automatic choice takes the warp-local form of this scheme
// (s6_warp, below): the per-(d, l) staging and the reduce stay in the warp that owns the
// channel, and only B/C are staged by the block (one barrier per tile instead of three).
//
// Chunked prefill (few channels, long L: B x D x N lanes cannot fill the GPU). L is split into
// K chunks (blockIdx.z). Pass 1, the summary kernel (SUM = true), scans chunks 0..K-2 without
// C, z or y: each lane leaves its end state (chunk 0 from initial_state, the others from 0) and
// the chunk's sum of delta in the workspace. Pass 2, the ordinary kernel over all K chunks,
// starts chunk c from its true state, carried across chunks 0..c-1 in registers
// (h <- exp(A * sum delta) * h + h_end: one exp per (state, earlier chunk)), and writes y and,
// in the last chunk, last_state. Cost: one more exp per element outside the last chunk.

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
    // L split into `nchunks` chunks of `chunk_len` steps (nchunks = 1: chunk_len = L). ws_h:
    // end state of chunks 0..nchunks-2, chunk 0 from initial_state, the others from 0, fp32
    // [B][nchunks-1][D][N]; ws_s: the sum of delta over each of those chunks, [B][nchunks-1][D].
    s6_u64 ws_h, ws_s;
    s6_i64 chunk_len, nchunks;
};

#define S6_LOG2E 1.4426950408889634f
// Most chunks of the chunked prefill; MAX_CHUNKS in plugin/cuda/params.rs.
#define S6_MAX_CHUNKS 16
#define S6_LN2 0.6931471805599453f

// ---------------------------------------------------------------------------------------------
// Element types: 0 = fp32, 1 = fp16, 2 = bf16.

template <int DT> struct S6Elem;
template <> struct S6Elem<0> {
    typedef float T;
    static __device__ __forceinline__ float load(const float* p) { return __ldg(p); }
    static __device__ __forceinline__ void store(float* p, float v) { *p = v; }
    // Raw words of 4 elements: loads land here unconverted, so nothing waits on them until the
    // data is staged (converting right after the load would stall on its latency).
    static constexpr int W = 4;
    // 4 consecutive elements; p 16-byte aligned.
    static __device__ __forceinline__ void load4raw(const float* p, unsigned* w) {
        uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
        w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
    }
    // Elements i < n at stride s, zeros after.
    template <typename S>
    static __device__ __forceinline__ void load4raw_s(const float* p, S s, int n, unsigned* w) {
#pragma unroll
        for (int i = 0; i < 4; ++i)
            w[i] = i < n ? __ldg(reinterpret_cast<const unsigned*>(p + (S)i * s)) : 0u;
    }
    static __device__ __forceinline__ void cvt4(const unsigned* w, float* o) {
#pragma unroll
        for (int i = 0; i < 4; ++i) o[i] = __uint_as_float(w[i]);
    }
    static __device__ __forceinline__ void store4(float* p, const float* v) {
        float4 w;
        w.x = v[0]; w.y = v[1]; w.z = v[2]; w.w = v[3];
        *reinterpret_cast<float4*>(p) = w;
    }
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
    static __device__ __forceinline__ float cvt(unsigned h) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"((s6_u16)h));
        return f;
    }
    static __device__ __forceinline__ unsigned pack(float v) {
        s6_u16 h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
        return h;
    }
    static constexpr int W = 2;
    // 4 consecutive elements; p 8-byte aligned.
    static __device__ __forceinline__ void load4raw(const s6_u16* p, unsigned* w) {
        uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
        w[0] = v.x; w[1] = v.y;
    }
    template <typename S>
    static __device__ __forceinline__ void load4raw_s(const s6_u16* p, S s, int n, unsigned* w) {
        unsigned h[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) h[i] = i < n ? (unsigned)__ldg(p + (S)i * s) : 0u;
        w[0] = h[0] | (h[1] << 16);
        w[1] = h[2] | (h[3] << 16);
    }
    static __device__ __forceinline__ void cvt4(const unsigned* w, float* o) {
        o[0] = cvt(w[0] & 0xffffu); o[1] = cvt(w[0] >> 16);
        o[2] = cvt(w[1] & 0xffffu); o[3] = cvt(w[1] >> 16);
    }
    static __device__ __forceinline__ void store4(s6_u16* p, const float* v) {
        uint2 w;
        w.x = pack(v[0]) | (pack(v[1]) << 16);
        w.y = pack(v[2]) | (pack(v[3]) << 16);
        *reinterpret_cast<uint2*>(p) = w;
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
    static __device__ __forceinline__ unsigned pack(float v) {
        unsigned b = __float_as_uint(v);
        if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u;
        b += 0x7fffu + ((b >> 16) & 1u);
        return b >> 16;
    }
    static constexpr int W = 2;
    // 4 consecutive elements; p 8-byte aligned.
    static __device__ __forceinline__ void load4raw(const s6_u16* p, unsigned* w) {
        uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
        w[0] = v.x; w[1] = v.y;
    }
    template <typename S>
    static __device__ __forceinline__ void load4raw_s(const s6_u16* p, S s, int n, unsigned* w) {
        unsigned h[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) h[i] = i < n ? (unsigned)__ldg(p + (S)i * s) : 0u;
        w[0] = h[0] | (h[1] << 16);
        w[1] = h[2] | (h[3] << 16);
    }
    static __device__ __forceinline__ void cvt4(const unsigned* w, float* o) {
        o[0] = __uint_as_float(w[0] << 16); o[1] = __uint_as_float(w[0] & 0xffff0000u);
        o[2] = __uint_as_float(w[1] << 16); o[3] = __uint_as_float(w[1] & 0xffff0000u);
    }
    static __device__ __forceinline__ void store4(s6_u16* p, const float* v) {
        uint2 w;
        w.x = pack(v[0]) | (pack(v[1]) << 16);
        w.y = pack(v[2]) | (pack(v[3]) << 16);
        *reinterpret_cast<uint2*>(p) = w;
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
__device__ __forceinline__ float4 s6_f4(float x, float y, float z, float w) {
    float4 v;
    v.x = x; v.y = y; v.z = z; v.w = w;
    return v;
}
__device__ __forceinline__ float s6_rcp(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// softplus with mamba_ssm's threshold: x > 20 -> x. FP32: log1p in full precision (as
// mamba_ssm's log1pf), for fp32 activations whose error is not hidden by rounding y to 16 bits.
// Else on the special-function unit: log(1 + e) for small e loses e's bits in 1 + e, so below
// e = 0.03 a series is used (error < e^5/5, relative < 2e-7); above, lg2.approx's absolute
// error (2^-22.6) is a relative one of up to 4e-6 near e = 0.03.
template <bool FP32 = false>
__device__ __forceinline__ float s6_softplus(float x) {
    float e = s6_ex2(x * S6_LOG2E);
    float r;
    if (FP32) {
        r = log1pf(e);
    } else {
        float series = e * (1.f - e * (0.5f - e * (0.33333334f - e * 0.25f)));
        float lg = s6_lg2(1.f + e) * S6_LN2;
        r = e < 0.03f ? series : lg;
    }
    return x > 20.f ? x : r;
}

// z * sigmoid(z). For z < -88 exp overflows to inf and the result is -0, as it should be.
__device__ __forceinline__ float s6_silu(float z) {
    return z * s6_rcp(1.f + s6_ex2(-z * S6_LOG2E));
}

template <bool FP32 = false>
__device__ __forceinline__ float s6_delta(float dv, float bias, bool softplus) {
    dv += bias;
    return softplus ? s6_softplus<FP32>(dv) : dv;
}

// Programmatic dependent launch (sm_90+; no-ops before and when launched without it). The
// host launches S6Scan's kernels with programmatic stream serialization where the device has
// it, so a kernel may start while the previous kernel of the stream still runs: every kernel
// waits here before its first global load or store. Decode also lets the next kernel of the
// stream start at once (that kernel waits for this one's completion the same way).
__device__ __forceinline__ void s6_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void s6_pdl_launch_next() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// Group gi of the 4-step groups of a tile's B (or C) rows (ROWS rows of TT steps), as every
// prefill kernel stages them: time-major tensors walk memory order (a row's groups in turn),
// the others state-major.
template <int TT, int ROWS>
__device__ __forceinline__ void s6_bc_group(int gi, bool time_major, int& n, int& t) {
    if (time_major) { n = gi / (TT / 4); t = (gi % (TT / 4)) * 4; }
    else { n = gi % ROWS; t = (gi / ROWS) * 4; }
}

// ---------------------------------------------------------------------------------------------
// Prefill.

// IT: type of the offsets within a tile (c·act_sc, n·bc_sn, t·stride). int when the host has
// checked that D·L and N·L stay below 2^31 (fewer instructions per load), else 64-bit.
template <int DT, int LANES, int NPL, int CPB, int TT, bool SUM, typename IT>
__device__ __forceinline__ void s6_prefill(const S6Params& p) {
    typedef S6Elem<DT> E;
    typedef typename E::T T;
    constexpr int NT = LANES * NPL;          // states a channel's lanes hold (>= N)
    constexpr int THREADS = CPB * LANES;
    constexpr int TTP = TT + 4;              // row pitch: keeps float4 alignment, spreads banks
    constexpr int AG = CPB * TT / 4;         // groups of 4 steps of one channel per tile
    constexpr int BG = NT * TT / 4;          // groups of 4 steps of one state (B and C)
    constexpr int EAG = (AG + THREADS - 1) / THREADS;  // activation groups each thread stages
    constexpr int EBG = (BG + THREADS - 1) / THREADS;  // B/C groups each thread stages
    static_assert(TT % 4 == 0, "tiles are scanned 4 steps at a time");
    static_assert(AG <= THREADS, "one output group per thread at most");

    __shared__ __align__(16) float s_dl[CPB][TTP];         // delta after bias/softplus
    __shared__ __align__(16) float s_du[CPB][TTP];         // delta * u
    __shared__ __align__(16) float s_u[CPB][TTP];
    __shared__ __align__(16) float s_z[CPB][TTP];
    __shared__ __align__(16) float s_b[NT][TTP];
    __shared__ __align__(16) float s_c[NT][TTP];
    __shared__ __align__(16) float s_yp[CPB][LANES][TTP];  // per-lane partial sums of y
    __shared__ float s_dskip[CPB];
    __shared__ float s_bias[CPB];

    const int tid = threadIdx.x;
    const s6_i64 D = p.dim, L = p.seqlen, N = p.dstate;
    const s6_i64 dg = D / p.groups;  // channels per group
    const unsigned blocks_per_group = (unsigned)((dg + CPB - 1) / CPB);
    const s6_i64 g = blockIdx.x / blocks_per_group;
    const s6_i64 cb = blockIdx.x % blocks_per_group;
    const s6_i64 b = blockIdx.y;
    const s6_i64 d0 = g * dg + cb * CPB;                                 // first channel
    const int nch = (int)((dg - cb * CPB) < CPB ? (dg - cb * CPB) : CPB);  // valid channels

    const bool softplus = (p.flags & 1) != 0;
    const bool has_z = !SUM && p.z != 0;
    s6_pdl_wait();
    // This block's chunk of L: [t_begin, t_end).
    const int chunk = (int)blockIdx.z;
    const int nchunks = (int)p.nchunks;
    const s6_i64 t_begin = chunk * p.chunk_len;
    const s6_i64 t_end = (t_begin + p.chunk_len) < L ? (t_begin + p.chunk_len) : L;
    // The tile's base pointer carries the 64-bit part; within a tile (c < CPB, t < TT,
    // n < NT) offsets are IT.
    const IT asc = (IT)p.act_sc, ast = (IT)p.act_st;
    const IT bsn = (IT)p.bc_sn, bst = (IT)p.bc_st;
    const T* gu = reinterpret_cast<const T*>(p.u) + (b * p.act_sb + d0 * p.act_sc);
    const T* gdelta = reinterpret_cast<const T*>(p.delta) + (b * p.act_sb + d0 * p.act_sc);
    const T* gz = reinterpret_cast<const T*>(p.z) + (b * p.act_sb + d0 * p.act_sc);
    T* gy = reinterpret_cast<T*>(p.y) + (b * p.act_sb + d0 * p.act_sc);
    const T* gB = reinterpret_cast<const T*>(p.B) + (b * p.bc_sb + g * p.bc_sg);
    const T* gC = reinterpret_cast<const T*>(p.C) + (b * p.bc_sb + g * p.bc_sg);
    // Time-major tensors with L % 4 == 0 and aligned bases move 4 steps per load/store.
    const unsigned vec_align = sizeof(T) * 4 - 1;
    const bool act_tm = ast == 1, bc_tm = bst == 1;
    const bool act_vec = act_tm && (L % 4) == 0 &&
                         ((p.u | p.delta | p.z | p.y) & vec_align) == 0;
    const bool bc_vec = bc_tm && (L % 4) == 0 && ((p.B | p.C) & vec_align) == 0;

    // Group k of this thread -> (row, first step); consecutive threads walk memory order.
    // Loading/staging walks the groups from the last thread down and the reduce phase from the
    // first thread up, so when there are fewer groups than threads the two phases land on
    // different warps.
    const int stid = THREADS - 1 - tid;
    auto act_group = [&](int k, int who, int& c, int& t) {
        const int gi = k * THREADS + who;
        if (act_tm) { c = gi / (TT / 4); t = (gi % (TT / 4)) * 4; }
        else { c = gi % CPB; t = (gi / CPB) * 4; }
    };
    auto bc_group = [&](int k, int& n, int& t) {
        s6_bc_group<TT, NT>(k * THREADS + tid, bc_tm, n, t);
    };

    constexpr int W = E::W;
    unsigned r_u[EAG][W], r_d[EAG][W], r_z[EAG][W], r_b[EBG][W], r_c[EBG][W];
    auto load_tile = [&](s6_i64 t0) {
        const int left = (int)((t_end - t0) < TT ? (t_end - t0) : TT);
        const T* u_t = gu + t0 * p.act_st;
        const T* d_t = gdelta + t0 * p.act_st;
        const T* z_t = gz + t0 * p.act_st;
        const T* b_t = gB + t0 * p.bc_st;
        const T* c_t = gC + t0 * p.bc_st;
#pragma unroll
        for (int k = 0; k < EAG; ++k) {
            int c, t;
            act_group(k, stid, c, t);
            const bool row_ok = k * THREADS + stid < AG && c < nch;
            const IT off = (IT)c * asc + (IT)t * ast;
            const int n = row_ok ? (left - t < 4 ? left - t : 4) : 0;  // elements in range
            if (act_vec && n == 4) {
                E::load4raw(u_t + off, r_u[k]);
                E::load4raw(d_t + off, r_d[k]);
                if (has_z) E::load4raw(z_t + off, r_z[k]);
                else E::load4raw_s(z_t + off, ast, 0, r_z[k]);
            } else {
                E::load4raw_s(u_t + off, ast, n, r_u[k]);
                E::load4raw_s(d_t + off, ast, n, r_d[k]);
                E::load4raw_s(z_t + off, ast, has_z ? n : 0, r_z[k]);
            }
        }
#pragma unroll
        for (int k = 0; k < EBG; ++k) {
            int nn, t;
            bc_group(k, nn, t);
            const bool row_ok = k * THREADS + tid < BG && nn < N;
            const IT off = (IT)nn * bsn + (IT)t * bst;
            const int n = row_ok ? (left - t < 4 ? left - t : 4) : 0;
            if (bc_vec && n == 4) {
                E::load4raw(b_t + off, r_b[k]);
                if (!SUM) E::load4raw(c_t + off, r_c[k]);
            } else {
                E::load4raw_s(b_t + off, bst, n, r_b[k]);
                if (!SUM) E::load4raw_s(c_t + off, bst, n, r_c[k]);
            }
        }
    };

    // Per-lane state.
    const int c_l = tid / LANES;  // channel row of this lane
    const int j = tid % LANES;    // lane within the channel
    const bool ch_ok = c_l < nch;
    const s6_i64 d_l = d0 + c_l;
    float a2[NPL], x[NPL];
    const float* ws_h = reinterpret_cast<const float*>(p.ws_h);
    const float* ws_s = reinterpret_cast<const float*>(p.ws_s);
    // Workspace rows of chunk c for this lane's channel.
    const s6_i64 wrow = (b * (nchunks - 1)) * D + d_l;  // + c * D
#pragma unroll
    for (int k = 0; k < NPL; ++k) {
        const int n = k * LANES + j;
        const bool ok = ch_ok && n < N;
        a2[k] = ok ? reinterpret_cast<const float*>(p.A)[d_l * N + n] * S6_LOG2E : 0.f;
        if (chunk == 0) {
            x[k] = (ok && p.initial_state)
                       ? reinterpret_cast<const float*>(p.initial_state)[(b * D + d_l) * N + n]
                       : 0.f;
        } else {
            x[k] = (!SUM && ok) ? ws_h[wrow * N + n] : 0.f;
        }
    }
    if (!SUM && chunk > 1 && ch_ok) {
        // Carry: the true state entering this chunk from the summaries of chunks 1..chunk-1
        // (chunk 0's summary already started from initial_state). Unrolled to S6_MAX_CHUNKS so
        // that every load is issued before the first use.
#pragma unroll
        for (int c = 1; c < S6_MAX_CHUNKS - 1; ++c) {
            if (c < chunk) {
                const s6_i64 row = wrow + (s6_i64)c * D;
                const float s = ws_s[row];
#pragma unroll
                for (int k = 0; k < NPL; ++k) {
                    const int n = k * LANES + j;
                    if (n < N) x[k] = fmaf(s6_ex2(a2[k] * s), x[k], ws_h[row * N + n]);
                }
            }
        }
    }
    float sdl = 0.f;  // sum of delta over the chunk (summary pass)
    if (tid < CPB) {
        const bool ok = tid < nch;
        s_dskip[tid] = (p.D && ok) ? reinterpret_cast<const float*>(p.D)[d0 + tid] : 0.f;
        s_bias[tid] =
            (p.delta_bias && ok) ? reinterpret_cast<const float*>(p.delta_bias)[d0 + tid] : 0.f;
    }

    load_tile(t_begin);
    for (s6_i64 t0 = t_begin; t0 < t_end; t0 += TT) {
        const int valid = (int)((t_end - t0) < TT ? (t_end - t0) : TT);
        __syncthreads();  // the previous tile's reduce phase is done with smem (and s_bias set)
#pragma unroll
        for (int k = 0; k < EAG; ++k) {
            int c, t;
            act_group(k, stid, c, t);
            if (k * THREADS + stid < AG) {
                const float bias = s_bias[c];
                float uf[4], df[4], zf[4], dl4[4], du4[4];
                E::cvt4(r_u[k], uf);
                E::cvt4(r_d[k], df);
                E::cvt4(r_z[k], zf);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    float dl = s6_delta<DT == 0>(df[i], bias, softplus);
                    if (t + i >= valid) dl = 0.f;  // padding leaves the state unchanged
                    dl4[i] = dl;
                    du4[i] = dl * uf[i];
                }
                float4 v;
                v.x = dl4[0]; v.y = dl4[1]; v.z = dl4[2]; v.w = dl4[3];
                *reinterpret_cast<float4*>(&s_dl[c][t]) = v;
                v.x = du4[0]; v.y = du4[1]; v.z = du4[2]; v.w = du4[3];
                *reinterpret_cast<float4*>(&s_du[c][t]) = v;
                if (!SUM) {
                    v.x = uf[0]; v.y = uf[1]; v.z = uf[2]; v.w = uf[3];
                    *reinterpret_cast<float4*>(&s_u[c][t]) = v;
                    v.x = zf[0]; v.y = zf[1]; v.z = zf[2]; v.w = zf[3];
                    *reinterpret_cast<float4*>(&s_z[c][t]) = v;
                }
            }
        }
#pragma unroll
        for (int k = 0; k < EBG; ++k) {
            int n, t;
            bc_group(k, n, t);
            if (k * THREADS + tid < BG) {
                float bf[4], cf[4];
                E::cvt4(r_b[k], bf);
                float4 v;
                v.x = bf[0]; v.y = bf[1]; v.z = bf[2]; v.w = bf[3];
                *reinterpret_cast<float4*>(&s_b[n][t]) = v;
                if (!SUM) {
                    E::cvt4(r_c[k], cf);
                    v.x = cf[0]; v.y = cf[1]; v.z = cf[2]; v.w = cf[3];
                    *reinterpret_cast<float4*>(&s_c[n][t]) = v;
                }
            }
        }
        __syncthreads();
        if (t0 + TT < t_end) load_tile(t0 + TT);  // in flight during the scan below

        // Scan: 4 steps per group; each lane leaves its partial y (its NPL states) in s_yp.
        const int ngroups = (valid + 3) / 4;
#pragma unroll 4
        for (int q = 0; q < ngroups; ++q) {
            const int tq = q * 4;
            const float4 dl4 = *reinterpret_cast<const float4*>(&s_dl[c_l][tq]);
            const float4 du4 = *reinterpret_cast<const float4*>(&s_du[c_l][tq]);
            const float dls[4] = {dl4.x, dl4.y, dl4.z, dl4.w};
            const float dus[4] = {du4.x, du4.y, du4.z, du4.w};
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
            if (SUM) sdl += (dls[0] + dls[1]) + (dls[2] + dls[3]);
#pragma unroll
            for (int k = 0; k < NPL; ++k) {
                const int n = k * LANES + j;
                const float4 b4 = *reinterpret_cast<const float4*>(&s_b[n][tq]);
                const float bs[4] = {b4.x, b4.y, b4.z, b4.w};
                if (SUM) {
#pragma unroll
                    for (int i = 0; i < 4; ++i)
                        x[k] = fmaf(s6_ex2(dls[i] * a2[k]), x[k], dus[i] * bs[i]);
                    continue;
                }
                const float4 c4 = *reinterpret_cast<const float4*>(&s_c[n][tq]);
                const float cs[4] = {c4.x, c4.y, c4.z, c4.w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float e = s6_ex2(dls[i] * a2[k]);
                    x[k] = fmaf(e, x[k], dus[i] * bs[i]);
                    acc[i] = fmaf(x[k], cs[i], acc[i]);
                }
            }
            if (SUM) continue;
            float4 a4;
            a4.x = acc[0];
            a4.y = acc[1];
            a4.z = acc[2];
            a4.w = acc[3];
            *reinterpret_cast<float4*>(&s_yp[c_l][j][tq]) = a4;
        }
        if (SUM) continue;  // the next iteration's first barrier orders smem reuse
        __syncthreads();

        // Reduce over the lanes, D skip, z gate, store: one group of 4 outputs per thread.
        {
            int c, t;
            act_group(0, tid, c, t);
            if (tid < AG && c < nch && t < valid) {
                float4 y4 = *reinterpret_cast<const float4*>(&s_yp[c][0][t]);
#pragma unroll
                for (int l = 1; l < LANES; ++l) {
                    const float4 v = *reinterpret_cast<const float4*>(&s_yp[c][l][t]);
                    y4.x += v.x;
                    y4.y += v.y;
                    y4.z += v.z;
                    y4.w += v.w;
                }
                const float4 u4 = *reinterpret_cast<const float4*>(&s_u[c][t]);
                const float4 z4 = *reinterpret_cast<const float4*>(&s_z[c][t]);
                const float ds = s_dskip[c];
                float ys[4] = {fmaf(ds, u4.x, y4.x), fmaf(ds, u4.y, y4.y), fmaf(ds, u4.z, y4.z),
                               fmaf(ds, u4.w, y4.w)};
                if (has_z) {
                    ys[0] *= s6_silu(z4.x);
                    ys[1] *= s6_silu(z4.y);
                    ys[2] *= s6_silu(z4.z);
                    ys[3] *= s6_silu(z4.w);
                }
                T* y_t = gy + t0 * p.act_st + ((IT)c * asc + (IT)t * ast);
                if (act_vec) {
                    E::store4(y_t, ys);
                } else {
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        if (t + i < valid) E::store(y_t + (IT)i * ast, ys[i]);
                    }
                }
            }
        }
    }

    if (SUM) {
        // End state and sum of delta of this chunk for pass 2.
        if (ch_ok) {
            float* wh = reinterpret_cast<float*>(p.ws_h);
            const s6_i64 row = wrow + (s6_i64)chunk * D;
#pragma unroll
            for (int k = 0; k < NPL; ++k) {
                const int n = k * LANES + j;
                if (n < N) wh[row * N + n] = x[k];
            }
            if (j == 0) reinterpret_cast<float*>(p.ws_s)[row] = sdl;
        }
        return;
    }
    if (p.last_state && ch_ok && chunk == nchunks - 1) {
        float* ls = reinterpret_cast<float*>(p.last_state);
#pragma unroll
        for (int k = 0; k < NPL; ++k) {
            const int n = k * LANES + j;
            if (n < N) ls[(b * D + d_l) * N + n] = x[k];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Warp-local prefill (N <= 16): the lanes-share-a-channel scheme above with the per-(d, l) work
// kept inside the warp that owns the channel. LANES = 16 / NPL lanes share a channel (lane j
// holds states j, j + LANES), a warp holds CPW = 32 / LANES channels, a block S6_WARP_WPB warps.
// Tiles are TT = 4·LANES steps, so lane j of a channel stages, and later finishes, steps
// 4j..4j+3 of it: it loads their u/delta/z (one tile ahead, raw), applies softplus, leaves
// delta and delta·u in the warp's shared rows, and keeps u and z in registers for the end of
// the tile, where it sums the LANES partial sums of its 4 outputs, applies D and the z gate and
// stores them. Only B and C, which every channel of a group reads, are staged by the whole
// block, double-buffered: one block barrier per tile (the kernel above has three), the rest is
// __syncwarp. Chunks of L (SUM = true: the summary pass) as in s6_prefill, same workspace.

#define S6_WARP_WPB 2  // warps per block

template <int DT, int NPL, bool SUM>
__device__ __forceinline__ void s6_warp(const S6Params& p) {
    typedef S6Elem<DT> E;
    typedef typename E::T T;
    constexpr int NS = 16;
    constexpr int LANES = NS / NPL;
    constexpr int CPW = 32 / LANES;
    constexpr int WPB = S6_WARP_WPB;
    constexpr int CPB = CPW * WPB;
    constexpr int THREADS = 32 * WPB;
    constexpr int TT = 4 * LANES;
    constexpr int TTP = TT + 4;              // row pitch: float4 alignment, banks spread
    constexpr int W = E::W;                  // raw words per 4 elements
    constexpr int BG = NS * TT / 4;          // 4-step groups of B (and C) per tile
    constexpr int EB = (BG + THREADS - 1) / THREADS;
    __shared__ __align__(16) float s_b[2][NS][TTP];
    __shared__ __align__(16) float s_c[2][NS][TTP];
    __shared__ __align__(16) float s_dl[WPB][CPW][TTP];
    __shared__ __align__(16) float s_du[WPB][CPW][TTP];
    __shared__ __align__(16) float s_yp[WPB][CPW][LANES][TTP];

    const int tid = threadIdx.x;
    const int wi = tid / 32, lane = tid % 32;
    const int cw = lane / LANES;  // channel of this lane within its warp
    const int j = lane % LANES;   // lane within the channel
    const s6_i64 D = p.dim, L = p.seqlen, N = p.dstate;
    const s6_i64 dg = D / p.groups;
    const unsigned bpg = (unsigned)((dg + CPB - 1) / CPB);
    const s6_i64 g = blockIdx.x / bpg;
    const s6_i64 c_in = (s6_i64)(blockIdx.x % bpg) * CPB + wi * CPW + cw;
    const bool ch_ok = c_in < dg;
    const s6_i64 d = g * dg + (ch_ok ? c_in : dg - 1);  // clamped: every load stays in range
    const s6_i64 b = blockIdx.y;
    const bool softplus = (p.flags & 1) != 0;
    const bool has_z = !SUM && p.z != 0;
    s6_pdl_wait();
    const int chunk = (int)blockIdx.z;
    const int nchunks = (int)p.nchunks;
    const s6_i64 t_begin = chunk * p.chunk_len;
    const s6_i64 t_end = (t_begin + p.chunk_len) < L ? (t_begin + p.chunk_len) : L;
    // 32-bit offsets within a tile (the host checks D·L, N·L < 2^31, as for s6_prefill).
    const int ast = (int)p.act_st, bsn = (int)p.bc_sn, bst = (int)p.bc_st;
    const s6_i64 aoff = b * p.act_sb + d * p.act_sc;
    const T* gu = reinterpret_cast<const T*>(p.u) + aoff;
    const T* gd = reinterpret_cast<const T*>(p.delta) + aoff;
    const T* gz = reinterpret_cast<const T*>(p.z) + aoff;
    T* gy = reinterpret_cast<T*>(p.y) + aoff;
    const s6_i64 boff = b * p.bc_sb + g * p.bc_sg;
    const T* gB = reinterpret_cast<const T*>(p.B) + boff;
    const T* gC = reinterpret_cast<const T*>(p.C) + boff;
    const unsigned vec_align = sizeof(T) * 4 - 1;
    const bool act_vec = ast == 1 && (L % 4) == 0 && (p.act_sb % 4) == 0 &&
                         (p.act_sc % 4) == 0 && ((p.u | p.delta | p.z | p.y) & vec_align) == 0;
    const bool bc_vec = bst == 1 && (L % 4) == 0 && (p.bc_sb % 4) == 0 && (p.bc_sg % 4) == 0 &&
                        (bsn % 4) == 0 && ((p.B | p.C) & vec_align) == 0;

    // This lane's 4 steps of its channel (raw, one tile ahead) and the block's B/C groups.
    unsigned ru[W], rd[W], rz[W], rb[EB][W], rc[EB][W];
    auto bc_group = [&](int gi, int& n, int& t) { s6_bc_group<TT, NS>(gi, bst == 1, n, t); };
    auto load_tile = [&](s6_i64 t0) {
        const s6_i64 ts = t0 + 4 * j;
        const int left = (int)(t_end - ts < 4 ? (t_end - ts > 0 ? t_end - ts : 0) : 4);
        const s6_i64 off = ts * ast;
        if (act_vec && left == 4) {
            E::load4raw(gu + off, ru);
            E::load4raw(gd + off, rd);
            if (has_z) E::load4raw(gz + off, rz);
            else E::load4raw_s(gz + off, ast, 0, rz);
        } else {
            E::load4raw_s(gu + off, ast, left, ru);
            E::load4raw_s(gd + off, ast, left, rd);
            E::load4raw_s(gz + off, ast, has_z ? left : 0, rz);
        }
#pragma unroll
        for (int k = 0; k < EB; ++k) {
            const int gi = k * THREADS + tid;
            int n, t;
            bc_group(gi, n, t);
            const s6_i64 bl = t_end - (t0 + t);
            const int cnt = (gi < BG && n < N) ? (int)(bl < 4 ? (bl > 0 ? bl : 0) : 4) : 0;
            const s6_i64 o = (s6_i64)n * bsn + (t0 + t) * bst;
            if (bc_vec && cnt == 4) {
                E::load4raw(gB + o, rb[k]);
                if (!SUM) E::load4raw(gC + o, rc[k]);
            } else {
                E::load4raw_s(gB + o, bst, cnt, rb[k]);
                if (!SUM) E::load4raw_s(gC + o, bst, cnt, rc[k]);
            }
        }
    };

    // States j + LANES·k of channel d.
    float a2[NPL], x[NPL];
    const float* ws_h = reinterpret_cast<const float*>(p.ws_h);
    const float* ws_s = reinterpret_cast<const float*>(p.ws_s);
    const s6_i64 wrow = (b * (nchunks - 1)) * D + d;  // + c·D: chunk c of this channel
#pragma unroll
    for (int k = 0; k < NPL; ++k) {
        const int n = k * LANES + j;
        const bool ok = n < N;
        a2[k] = ok ? __ldg(reinterpret_cast<const float*>(p.A) + d * N + n) * S6_LOG2E : 0.f;
        float v = 0.f;
        if (chunk == 0) {
            if (ok && p.initial_state)
                v = __ldg(reinterpret_cast<const float*>(p.initial_state) + (b * D + d) * N + n);
        } else if (!SUM && ok) {
            v = ws_h[wrow * N + n];
        }
        x[k] = v;
    }
    if (!SUM) {
        // The true state entering this chunk, carried over the summaries of chunks 1..chunk-1.
#pragma unroll 1
        for (int c = 1; c < chunk; ++c) {
            const s6_i64 row = wrow + (s6_i64)c * D;
            const float s = ws_s[row];
#pragma unroll
            for (int k = 0; k < NPL; ++k) {
                const int n = k * LANES + j;
                if (n < N) x[k] = fmaf(s6_ex2(a2[k] * s), x[k], ws_h[row * N + n]);
            }
        }
    }
    const float bias =
        p.delta_bias ? __ldg(reinterpret_cast<const float*>(p.delta_bias) + d) : 0.f;
    const float dskip = (!SUM && p.D) ? __ldg(reinterpret_cast<const float*>(p.D) + d) : 0.f;

    float sdl = 0.f;  // sum of delta over the chunk (summary pass; lane j's steps)
    int buf = 0;
    load_tile(t_begin);
    for (s6_i64 t0 = t_begin; t0 < t_end; t0 += TT, buf ^= 1) {
        // Stage: this lane's 4 steps (warp rows), the block's B/C groups (buffer `buf`, last
        // read two tiles ago, before the previous barrier).
        float uf[4], zf[4];
        {
            float df[4], dl4[4], du4[4];
            E::cvt4(ru, uf);
            E::cvt4(rd, df);
            E::cvt4(rz, zf);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                float dl = s6_delta<DT == 0>(df[i], bias, softplus);
                if (t0 + 4 * j + i >= t_end) dl = 0.f;  // padding leaves the state unchanged
                dl4[i] = dl;
                du4[i] = dl * uf[i];
                if (SUM) sdl += dl;
            }
            *reinterpret_cast<float4*>(&s_dl[wi][cw][4 * j]) = s6_f4(dl4[0], dl4[1], dl4[2], dl4[3]);
            *reinterpret_cast<float4*>(&s_du[wi][cw][4 * j]) = s6_f4(du4[0], du4[1], du4[2], du4[3]);
        }
#pragma unroll
        for (int k = 0; k < EB; ++k) {
            const int gi = k * THREADS + tid;
            if (gi < BG) {
                int n, t;
                bc_group(gi, n, t);
                float f[4];
                E::cvt4(rb[k], f);
                *reinterpret_cast<float4*>(&s_b[buf][n][t]) = s6_f4(f[0], f[1], f[2], f[3]);
                if (!SUM) {
                    E::cvt4(rc[k], f);
                    *reinterpret_cast<float4*>(&s_c[buf][n][t]) = s6_f4(f[0], f[1], f[2], f[3]);
                }
            }
        }
        __syncthreads();
        if (t0 + TT < t_end) load_tile(t0 + TT);  // in flight during the scan below

        // Scan the tile (steps past t_end have delta = delta·u = 0).
#pragma unroll
        for (int q = 0; q < TT / 4; ++q) {
            const float4 dl4 = *reinterpret_cast<const float4*>(&s_dl[wi][cw][4 * q]);
            const float4 du4 = *reinterpret_cast<const float4*>(&s_du[wi][cw][4 * q]);
            const float dls[4] = {dl4.x, dl4.y, dl4.z, dl4.w};
            const float dus[4] = {du4.x, du4.y, du4.z, du4.w};
            float acc[4];
#pragma unroll
            for (int k = 0; k < NPL; ++k) {
                const int n = k * LANES + j;
                const float4 b4 = *reinterpret_cast<const float4*>(&s_b[buf][n][4 * q]);
                const float bs[4] = {b4.x, b4.y, b4.z, b4.w};
                if (SUM) {
#pragma unroll
                    for (int i = 0; i < 4; ++i)
                        x[k] = fmaf(s6_ex2(dls[i] * a2[k]), x[k], dus[i] * bs[i]);
                    continue;
                }
                const float4 c4 = *reinterpret_cast<const float4*>(&s_c[buf][n][4 * q]);
                const float cs[4] = {c4.x, c4.y, c4.z, c4.w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    x[k] = fmaf(s6_ex2(dls[i] * a2[k]), x[k], dus[i] * bs[i]);
                    acc[i] = k == 0 ? x[k] * cs[i] : fmaf(x[k], cs[i], acc[i]);
                }
            }
            if (!SUM)
                *reinterpret_cast<float4*>(&s_yp[wi][cw][j][4 * q]) =
                    s6_f4(acc[0], acc[1], acc[2], acc[3]);
        }
        __syncwarp();  // the warp's rows are read (and s_yp written) by all its lanes
        if (SUM) continue;
        // Finish this lane's 4 steps: sum over the channel's lanes, D skip, z gate, store.
        float4 y4 = *reinterpret_cast<const float4*>(&s_yp[wi][cw][0][4 * j]);
#pragma unroll
        for (int l = 1; l < LANES; ++l) {
            const float4 v = *reinterpret_cast<const float4*>(&s_yp[wi][cw][l][4 * j]);
            y4.x += v.x;
            y4.y += v.y;
            y4.z += v.z;
            y4.w += v.w;
        }
        float ys[4] = {fmaf(dskip, uf[0], y4.x), fmaf(dskip, uf[1], y4.y),
                       fmaf(dskip, uf[2], y4.z), fmaf(dskip, uf[3], y4.w)};
        if (has_z) {
#pragma unroll
            for (int i = 0; i < 4; ++i) ys[i] *= s6_silu(zf[i]);
        }
        const s6_i64 ts = t0 + 4 * j;
        if (ch_ok && ts < t_end) {
            T* y_t = gy + ts * ast;
            if (act_vec && ts + 4 <= t_end) {
                E::store4(y_t, ys);
            } else {
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    if (ts + i < t_end) E::store(y_t + (s6_i64)i * ast, ys[i]);
            }
        }
        __syncwarp();  // s_yp is read by all lanes before the next tile rewrites it
    }

    if (SUM) {
        // Lane j summed delta over its steps: the channel's sum is over its LANES lanes.
#pragma unroll
        for (int o = LANES / 2; o >= 1; o /= 2) sdl += __shfl_xor_sync(0xffffffffu, sdl, o);
        if (ch_ok) {
            float* wh = reinterpret_cast<float*>(p.ws_h);
            const s6_i64 row = wrow + (s6_i64)chunk * D;
#pragma unroll
            for (int k = 0; k < NPL; ++k) {
                const int n = k * LANES + j;
                if (n < N) wh[row * N + n] = x[k];
            }
            if (j == 0) reinterpret_cast<float*>(p.ws_s)[row] = sdl;
        }
        return;
    }
    if (p.last_state && ch_ok && chunk == nchunks - 1) {
        float* ls = reinterpret_cast<float*>(p.last_state) + (b * D + d) * N;
#pragma unroll
        for (int k = 0; k < NPL; ++k) {
            const int n = k * LANES + j;
            if (n < N) ls[n] = x[k];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Channel-per-lane prefill (N <= 16). A thread owns all N states of one channel over its chunk
// of L: the per-(d, l) work (loads of u/delta/z, softplus, D skip, z gate, the y store) is done
// once per lane and amortised over N states, and y is summed in registers (no cross-lane
// reduction). u/delta/z are read by each thread along its own row (time-major: 32-byte pieces,
// whole sectors); B and C of a tile are staged in shared memory as [step][state] and read as
// 16-byte broadcasts (every thread of the block reads the same address). Double-buffered
// staging: one barrier per tile. A is pre-scaled by log2 e, so dA = ex2(delta * A').
// Few channels (B x D lanes cannot fill the GPU) take the chunked scheme of the prefill above
// (same workspace layout, SUM = true is the summary pass).

#define S6_CH_CPB 64  // threads (channels) per block

template <typename T> __device__ __forceinline__ unsigned s6_raw(const T* p);
template <> __device__ __forceinline__ unsigned s6_raw<float>(const float* p) {
    return __float_as_uint(__ldg(p));
}
template <> __device__ __forceinline__ unsigned s6_raw<s6_u16>(const s6_u16* p) {
    return (unsigned)__ldg(p);
}

template <int DT, int TT, bool SUM, int LPC>
__device__ __forceinline__ void s6_chan(const S6Params& p) {
    typedef S6Elem<DT> E;
    typedef typename E::T T;
    constexpr int NS = 16;
    constexpr int CPB = S6_CH_CPB;          // threads per block
    constexpr int NSL = NS / LPC;           // states per lane (LPC lanes share a channel)
    constexpr int CPBC = CPB / LPC;         // channels per block
    constexpr int W = E::W;                 // raw 32-bit words per 4 elements
    constexpr int RW = TT / 4 * W;          // raw words per tile of one row
    constexpr int EPW = 4 / W;              // elements per word
    constexpr int BGRP = NS * TT / 4;       // 4-step groups of B (and C) per tile
    constexpr int EB = (BGRP + CPB - 1) / CPB;
    static_assert(RW % 4 == 0, "a tile's row is whole 16-byte vectors");
    __shared__ __align__(16) float s_b[2][TT][NS];
    __shared__ __align__(16) float s_c[2][TT][NS];

    const int tid = threadIdx.x;
    const int D = (int)p.dim, L = (int)p.seqlen, N = (int)p.dstate;
    const int dg = D / (int)p.groups;
    const int bpg = (dg + CPBC - 1) / CPBC;
    const int g = (int)blockIdx.x / bpg;
    const int c_in = ((int)blockIdx.x % bpg) * CPBC + tid / LPC;
    const int j = tid % LPC;  // lane within the channel: states j * NSL ...
    const bool ch_ok = c_in < dg;
    const int d = g * dg + (ch_ok ? c_in : dg - 1);  // clamped: every load stays in range
    const int b = (int)blockIdx.y;
    const bool softplus = (p.flags & 1) != 0;
    const bool has_z = !SUM && p.z != 0;
    s6_pdl_wait();
    const int chunk = (int)blockIdx.z;
    const int nchunks = (int)p.nchunks;
    const int t_begin = chunk * (int)p.chunk_len;
    const int t_end = (t_begin + (int)p.chunk_len) < L ? (t_begin + (int)p.chunk_len) : L;
    const int ast = (int)p.act_st, bst = (int)p.bc_st, bsn = (int)p.bc_sn;
    const s6_i64 aoff = (s6_i64)b * p.act_sb + (s6_i64)d * p.act_sc;
    const T* gu = reinterpret_cast<const T*>(p.u) + aoff;
    const T* gd = reinterpret_cast<const T*>(p.delta) + aoff;
    const T* gz = reinterpret_cast<const T*>(p.z) + aoff;
    T* gy = reinterpret_cast<T*>(p.y) + aoff;
    const s6_i64 boff = (s6_i64)b * p.bc_sb + (s6_i64)g * p.bc_sg;
    const T* gB = reinterpret_cast<const T*>(p.B) + boff;
    const T* gC = reinterpret_cast<const T*>(p.C) + boff;
    // A row of a tile is RW/4 16-byte loads when time-major and aligned.
    const bool act_vec = ast == 1 && ((s6_i64)L * (s6_i64)sizeof(T)) % 16 == 0 &&
                         (p.act_sb * (s6_i64)sizeof(T)) % 16 == 0 &&
                         ((p.u | p.delta | p.z | p.y) & 15) == 0;
    const bool bc_vec = bst == 1 && (L % 4) == 0 && (p.bc_sb % 4) == 0 && (p.bc_sg % 4) == 0 &&
                        (bsn % 4) == 0 && ((p.B | p.C) & (sizeof(T) * 4 - 1)) == 0;

    unsigned ru[RW], rd[RW], rz[RW], rb[EB][W], rc[EB][W];
    auto load_row = [&](const T* base, int t0, bool on, unsigned* w) {
        if (!on) {
#pragma unroll
            for (int i = 0; i < RW; ++i) w[i] = 0u;
        } else if (act_vec && t0 + TT <= t_end) {
            const uint4* q = reinterpret_cast<const uint4*>(base + t0);
#pragma unroll
            for (int i = 0; i < RW / 4; ++i) {
                const uint4 v = __ldg(q + i);
                w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
            }
        } else {
#pragma unroll
            for (int i = 0; i < RW; ++i) w[i] = 0u;
#pragma unroll
            for (int i = 0; i < TT; ++i) {
                if (t0 + i < t_end) {
                    const unsigned r = s6_raw<T>(base + (s6_i64)(t0 + i) * ast);
                    w[i / EPW] |= EPW == 1 ? r : (r << (16 * (i % EPW)));
                }
            }
        }
    };
    auto bc_group = [&](int gi, int& n, int& t) { s6_bc_group<TT, NS>(gi, bst == 1, n, t); };
    auto load_tile = [&](int t0) {
        load_row(gu, t0, true, ru);
        load_row(gd, t0, true, rd);
        load_row(gz, t0, has_z, rz);
#pragma unroll
        for (int k = 0; k < EB; ++k) {
            const int gi = k * CPB + tid;
            int n, t;
            bc_group(gi, n, t);
            const int left = t_end - (t0 + t);
            const int cnt = (gi < BGRP && n < N) ? (left < 4 ? (left > 0 ? left : 0) : 4) : 0;
            const s6_i64 off = (s6_i64)n * bsn + (s6_i64)(t0 + t) * bst;
            if (bc_vec && cnt == 4) {
                E::load4raw(gB + off, rb[k]);
                if (!SUM) E::load4raw(gC + off, rc[k]);
            } else {
                E::load4raw_s(gB + off, bst, cnt, rb[k]);
                if (!SUM) E::load4raw_s(gC + off, bst, cnt, rc[k]);
            }
        }
    };

    // Per-thread state: A' and h of all N states.
    float a2[NSL], h[NSL];
    const float* Ap = reinterpret_cast<const float*>(p.A) + (s6_i64)d * N;
    const s6_i64 srow = ((s6_i64)b * D + d) * N;  // state row (initial/last state)
    const float* ws_h = reinterpret_cast<const float*>(p.ws_h);
    const float* ws_s = reinterpret_cast<const float*>(p.ws_s);
    const s6_i64 wrow = (s6_i64)b * (nchunks - 1) * D + d;  // + c * D: chunk c of this channel
#pragma unroll
    for (int k = 0; k < NSL; ++k) {
        const int n = j * NSL + k;
        a2[k] = n < N ? __ldg(Ap + n) * S6_LOG2E : 0.f;
        float x = 0.f;
        if (chunk == 0) {
            if (p.initial_state && n < N)
                x = __ldg(reinterpret_cast<const float*>(p.initial_state) + srow + n);
        } else if (!SUM && n < N) {
            x = ws_h[wrow * N + n];
        }
        h[k] = x;
    }
    if (!SUM) {
        // The true state entering this chunk: carried over the summaries of chunks 1..chunk-1.
#pragma unroll 1
        for (int c = 1; c < chunk; ++c) {
            const s6_i64 row = wrow + (s6_i64)c * D;
            const float s = ws_s[row];
            float e[NSL];
#pragma unroll
            for (int k = 0; k < NSL; ++k)
                e[k] = j * NSL + k < N ? ws_h[row * N + j * NSL + k] : 0.f;
#pragma unroll
            for (int k = 0; k < NSL; ++k) h[k] = fmaf(s6_ex2(a2[k] * s), h[k], e[k]);
        }
    }
    const float bias =
        p.delta_bias ? __ldg(reinterpret_cast<const float*>(p.delta_bias) + d) : 0.f;
    const float dskip = (!SUM && p.D) ? __ldg(reinterpret_cast<const float*>(p.D) + d) : 0.f;

    float sdl = 0.f;
    int buf = 0;
    load_tile(t_begin);
    for (int t0 = t_begin; t0 < t_end; t0 += TT, buf ^= 1) {
        // Stage this tile's B and C (the other buffer may still be read by a slower warp's
        // previous tile; this one was last read two tiles ago, before the last barrier).
#pragma unroll
        for (int k = 0; k < EB; ++k) {
            const int gi = k * CPB + tid;
            if (gi < BGRP) {
                int n, t;
                bc_group(gi, n, t);
                float f[4];
                E::cvt4(rb[k], f);
#pragma unroll
                for (int i = 0; i < 4; ++i) s_b[buf][t + i][n] = f[i];
                if (!SUM) {
                    E::cvt4(rc[k], f);
#pragma unroll
                    for (int i = 0; i < 4; ++i) s_c[buf][t + i][n] = f[i];
                }
            }
        }
        unsigned cu[RW], cd[RW], cz[RW];
#pragma unroll
        for (int i = 0; i < RW; ++i) { cu[i] = ru[i]; cd[i] = rd[i]; cz[i] = rz[i]; }
        __syncthreads();
        if (t0 + TT < t_end) load_tile(t0 + TT);  // in flight during the scan below
        const bool full = act_vec && t0 + TT <= t_end;

#pragma unroll
        for (int q = 0; q < TT / 4; ++q) {
            float uf[4], df[4], zf[4], yo[4];
            E::cvt4(cu + q * W, uf);
            E::cvt4(cd + q * W, df);
            E::cvt4(cz + q * W, zf);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int tt = q * 4 + i;
                float dl = s6_delta<DT == 0>(df[i], bias, softplus);
                if (t0 + tt >= t_end) dl = 0.f;  // padding leaves the state unchanged
                const float du = dl * uf[i];
                if (SUM) sdl += dl;
                float y = 0.f;
#pragma unroll
                for (int k4 = 0; k4 < NSL; k4 += 4) {
                    const int n4 = j * NSL + k4;
                    const float4 b4 = *reinterpret_cast<const float4*>(&s_b[buf][tt][n4]);
                    const float bs[4] = {b4.x, b4.y, b4.z, b4.w};
                    if (SUM) {
#pragma unroll
                        for (int k = 0; k < 4; ++k)
                            h[k4 + k] = fmaf(s6_ex2(dl * a2[k4 + k]), h[k4 + k], du * bs[k]);
                    } else {
                        const float4 c4 = *reinterpret_cast<const float4*>(&s_c[buf][tt][n4]);
                        const float cs[4] = {c4.x, c4.y, c4.z, c4.w};
#pragma unroll
                        for (int k = 0; k < 4; ++k) {
                            h[k4 + k] = fmaf(s6_ex2(dl * a2[k4 + k]), h[k4 + k], du * bs[k]);
                            y = fmaf(h[k4 + k], cs[k], y);
                        }
                    }
                }
                if (!SUM) {
#pragma unroll
                    for (int o = LPC / 2; o >= 1; o /= 2) y += __shfl_xor_sync(0xffffffffu, y, o);
                    y = fmaf(dskip, uf[i], y);
                    if (has_z) y *= s6_silu(zf[i]);
                    yo[i] = y;
                }
            }
            if (!SUM && ch_ok && j == 0) {
                if (full) {
                    E::store4(gy + t0 + q * 4, yo);
                } else {
#pragma unroll
                    for (int i = 0; i < 4; ++i)
                        if (t0 + q * 4 + i < t_end)
                            E::store(gy + (s6_i64)(t0 + q * 4 + i) * ast, yo[i]);
                }
            }
        }
    }

    if (SUM) {
        if (ch_ok) {
            float* wh = reinterpret_cast<float*>(p.ws_h);
            const s6_i64 row = wrow + (s6_i64)chunk * D;
#pragma unroll
            for (int k = 0; k < NSL; ++k)
                if (j * NSL + k < N) wh[row * N + j * NSL + k] = h[k];
            if (j == 0) reinterpret_cast<float*>(p.ws_s)[row] = sdl;
        }
        return;
    }
    if (p.last_state && ch_ok && chunk == nchunks - 1) {
        float* ls = reinterpret_cast<float*>(p.last_state) + srow;
#pragma unroll
        for (int k = 0; k < NSL; ++k)
            if (j * NSL + k < N) ls[j * NSL + k] = h[k];
    }
}

// ---------------------------------------------------------------------------------------------
// Decode step (L = 1): LANES lanes per channel, NPL states each (more in a loop); a shuffle sums y.
// Grid (ceil(D * LANES / 128), B). Lanes past D are clamped to channel D-1 (their loads stay in
// range, their results are dropped), so every load is unconditional and issued first. When N is
// a multiple of 4 and the rows are aligned, a lane's 4 states of h, A, B and C are one vector
// load each (16 bytes for fp32, 8 for 16-bit B/C) and its new state one 16-byte store.

template <int DT, int LANES, int NPL, typename IT>
__device__ __forceinline__ void s6_decode(const S6Params& p) {
    typedef S6Elem<DT> E;
    typedef typename E::T T;
    static_assert(NPL % 4 == 0, "states move in groups of 4");
    // 32-bit index math (the host checks B * D * 32 < 2^31): 64-bit division is a subroutine.
    const int D = (int)p.dim, N = (int)p.dstate;
    const int b = (int)blockIdx.y;
    const unsigned gid = blockIdx.x * blockDim.x + threadIdx.x;
    const int d_raw = (int)(gid / LANES);
    const int j = (int)(gid % LANES);
    const bool ok = d_raw < D;
    const int d = ok ? d_raw : D - 1;
    const int g = p.groups == 1 ? 0 : d / (D / (int)p.groups);
    const IT act_off = (IT)b * (IT)p.act_sb + (IT)d * (IT)p.act_sc;
    const IT bc_off = (IT)b * (IT)p.bc_sb + (IT)g * (IT)p.bc_sg;
    const IT st_off = ((IT)b * D + d) * N;
    s6_pdl_launch_next();
    s6_pdl_wait();
    const float dv = E::load(reinterpret_cast<const T*>(p.delta) + act_off);
    const float uv = E::load(reinterpret_cast<const T*>(p.u) + act_off);
    const float zv = p.z ? E::load(reinterpret_cast<const T*>(p.z) + act_off) : 0.f;
    const float bias = p.delta_bias ? __ldg(reinterpret_cast<const float*>(p.delta_bias) + d) : 0.f;
    const float dskip = p.D ? __ldg(reinterpret_cast<const float*>(p.D) + d) : 0.f;
    const float* A = reinterpret_cast<const float*>(p.A) + (IT)d * N;
    const float* h0 = p.initial_state ? reinterpret_cast<const float*>(p.initial_state) + st_off
                                      : nullptr;
    float* h1 = p.last_state ? reinterpret_cast<float*>(p.last_state) + st_off : nullptr;
    const T* Bp = reinterpret_cast<const T*>(p.B) + bc_off;
    const T* Cp = reinterpret_cast<const T*>(p.C) + bc_off;
    const bool vec = (N % 4) == 0 && p.bc_sn == 1 && (p.bc_sb % 4) == 0 && (p.bc_sg % 4) == 0 &&
                     ((p.A | p.initial_state | p.last_state) & 15) == 0 &&
                     ((p.B | p.C) & (sizeof(T) * 4 - 1)) == 0;
    const int n0 = j * NPL;
    float hv[NPL], bv[NPL], cv[NPL], av[NPL];
    if (vec) {
#pragma unroll
        for (int q = 0; q < NPL; q += 4) {
            const int n = n0 + q;
            if (n < N) {
                const float4 a4 = __ldg(reinterpret_cast<const float4*>(A + n));
                float4 h4 = s6_f4(0.f, 0.f, 0.f, 0.f);
                if (h0) h4 = __ldg(reinterpret_cast<const float4*>(h0 + n));
                unsigned wb[E::W], wc[E::W];
                E::load4raw(Bp + n, wb);
                E::load4raw(Cp + n, wc);
                E::cvt4(wb, bv + q);
                E::cvt4(wc, cv + q);
                av[q] = a4.x; av[q + 1] = a4.y; av[q + 2] = a4.z; av[q + 3] = a4.w;
                hv[q] = h4.x; hv[q + 1] = h4.y; hv[q + 2] = h4.z; hv[q + 3] = h4.w;
            } else {
#pragma unroll
                for (int k = 0; k < 4; ++k) hv[q + k] = bv[q + k] = cv[q + k] = av[q + k] = 0.f;
            }
        }
    } else {
#pragma unroll
        for (int k = 0; k < NPL; ++k) {
            const int n = n0 + k;
            const bool okn = n < N;
            hv[k] = (okn && h0) ? __ldg(h0 + n) : 0.f;
            bv[k] = okn ? E::load(Bp + (IT)n * (IT)p.bc_sn) : 0.f;
            cv[k] = okn ? E::load(Cp + (IT)n * (IT)p.bc_sn) : 0.f;
            av[k] = okn ? __ldg(A + n) : 0.f;
        }
    }
    const float dl = s6_delta<DT == 0>(dv, bias, (p.flags & 1) != 0);
    const float du = dl * uv;
    const float dl2 = dl * S6_LOG2E;
    float yv = 0.f;
#pragma unroll
    for (int k = 0; k < NPL; ++k) {
        hv[k] = fmaf(s6_ex2(dl2 * av[k]), hv[k], du * bv[k]);
        yv = fmaf(hv[k], cv[k], yv);
    }
    if (ok && h1) {
        if (vec) {
#pragma unroll
            for (int q = 0; q < NPL; q += 4)
                if (n0 + q < N)
                    *reinterpret_cast<float4*>(h1 + n0 + q) =
                        s6_f4(hv[q], hv[q + 1], hv[q + 2], hv[q + 3]);
        } else {
#pragma unroll
            for (int k = 0; k < NPL; ++k)
                if (n0 + k < N) h1[n0 + k] = hv[k];
        }
    }
    for (int n = LANES * NPL + j; n < N; n += LANES) {
        float xv = h0 ? __ldg(h0 + n) : 0.f;
        xv = fmaf(s6_ex2(dl2 * __ldg(A + n)), xv, du * E::load(Bp + (IT)n * (IT)p.bc_sn));
        yv = fmaf(xv, E::load(Cp + (IT)n * (IT)p.bc_sn), yv);
        if (ok && h1) h1[n] = xv;
    }
#pragma unroll
    for (int o = LANES / 2; o >= 1; o /= 2) yv += __shfl_xor_sync(0xffffffffu, yv, o);
    if (ok && j == 0) {
        yv = fmaf(dskip, uv, yv);
        if (p.z) yv *= s6_silu(zv);
        E::store(reinterpret_cast<T*>(p.y) + act_off, yv);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points. Names: s6_prefill_<dtype>_l<LANES>_p<NPL> (and s6_chunksum_… for pass 1 of
// the chunked prefill), s6_decode_<dtype>_l<LANES>_p<NPL>.
// plugin/cuda/params.rs lists the same table; block sizes are CPB * LANES and 128.

#define S6_PREFILL(NAME, DT, LANES, NPL, CPB, TT)                                    \
    extern "C" __global__ void __launch_bounds__(CPB * LANES)                        \
        s6_prefill_##NAME##_l##LANES##_p##NPL(S6Params p) {                          \
        s6_prefill<DT, LANES, NPL, CPB, TT, false, int>(p);                          \
    }                                                                                \
    extern "C" __global__ void __launch_bounds__(CPB * LANES)                        \
        s6_chunksum_##NAME##_l##LANES##_p##NPL(S6Params p) {                         \
        s6_prefill<DT, LANES, NPL, CPB, TT, true, int>(p);                           \
    }
// A second block size of one shape: s6_prefill_<dtype>_l<LANES>_p<NPL>_c<CPB>.
#define S6_PREFILL_C(NAME, DT, LANES, NPL, CPB, TT)                                  \
    extern "C" __global__ void __launch_bounds__(CPB * LANES)                        \
        s6_prefill_##NAME##_l##LANES##_p##NPL##_c##CPB(S6Params p) {                 \
        s6_prefill<DT, LANES, NPL, CPB, TT, false, int>(p);                          \
    }                                                                                \
    extern "C" __global__ void __launch_bounds__(CPB * LANES)                        \
        s6_chunksum_##NAME##_l##LANES##_p##NPL##_c##CPB(S6Params p) {                \
        s6_prefill<DT, LANES, NPL, CPB, TT, true, int>(p);                           \
    }
// 64-bit offsets within a tile (D·L or N·L ≥ 2^31), one pass: 1 state per lane for N ≤ 16,
// 16 for N ≤ 256 (WIDE_CONFIGS in plugin/cuda/params.rs).
#define S6_PREFILL64(NAME, DT, LANES, NPL, CPB, TT)                                  \
    extern "C" __global__ void __launch_bounds__(CPB * LANES)                        \
        s6_prefill64_##NAME##_l##LANES##_p##NPL(S6Params p) {                        \
        s6_prefill<DT, LANES, NPL, CPB, TT, false, s6_i64>(p);                       \
    }

#define S6_PREFILL_ALL(NAME, DT)                                                     \
    S6_PREFILL(NAME, DT, 16, 1, 8, 32)                                               \
    S6_PREFILL(NAME, DT, 8, 2, 16, 32)                                               \
    S6_PREFILL(NAME, DT, 4, 4, 32, 16)                                               \
    S6_PREFILL(NAME, DT, 16, 2, 8, 32)                                               \
    S6_PREFILL(NAME, DT, 16, 4, 8, 32)                                               \
    S6_PREFILL(NAME, DT, 16, 8, 8, 16)                                               \
    S6_PREFILL(NAME, DT, 16, 16, 4, 16)                                              \
    S6_PREFILL_C(NAME, DT, 8, 2, 8, 32)

#define S6_DECODE(NAME, DT, LANES, NPL)                                              \
    extern "C" __global__ void __launch_bounds__(128)                                \
        s6_decode_##NAME##_l##LANES##_p##NPL(S6Params p) {                           \
        s6_decode<DT, LANES, NPL, s6_i64>(p);                                        \
    }
// 32-bit offsets (the host checks B * D * N < 2^31): fewer instructions before the first load.
#define S6_DECODE32(NAME, DT)                                                        \
    extern "C" __global__ void __launch_bounds__(128) s6_decode32_##NAME(S6Params p) { \
        s6_decode<DT, 4, 4, int>(p);                                                 \
    }

#define S6_DECODE_ALL(NAME, DT)                                                      \
    S6_DECODE(NAME, DT, 4, 4) S6_DECODE(NAME, DT, 8, 4) S6_DECODE(NAME, DT, 16, 4)   \
    S6_DECODE(NAME, DT, 2, 8) S6_DECODE(NAME, DT, 1, 16)

// s6_chan_<dtype> (and s6_chansum_…): up to 170 registers, 6 blocks per SM;
// s6_chanr_<dtype>: capped at 128 registers for 8 blocks (a few spills); s6_chan2_<dtype>:
// 2 lanes per channel, 8 states each (y summed with one shuffle per step), twice the warps.
#define S6_CHAN1(NAME, TAG, DT, TT, MINB, LPC)                                       \
    extern "C" __global__ void __launch_bounds__(S6_CH_CPB, MINB)                    \
        s6_##TAG##_##NAME(S6Params p) {                                              \
        s6_chan<DT, TT, false, LPC>(p);                                              \
    }                                                                                \
    extern "C" __global__ void __launch_bounds__(S6_CH_CPB, MINB)                    \
        s6_##TAG##sum_##NAME(S6Params p) {                                           \
        s6_chan<DT, TT, true, LPC>(p);                                               \
    }
#define S6_CHAN(NAME, DT, TT)                                                        \
    S6_CHAN1(NAME, chan, DT, TT, 6, 1) S6_CHAN1(NAME, chanr, DT, TT, 8, 1)           \
    S6_CHAN1(NAME, chan2, DT, TT, 8, 2)

// s6_warp_<dtype>_p2 (and s6_warpsum_…): 2 states per lane, blocks of S6_WARP_WPB warps,
// registers capped for 10 resident blocks per SM. (1 state per lane, 64-step tiles, was
// slower wherever it applied: H200, 2026-12-01.)
#define S6_WARP(NAME, DT, NPL)                                                       \
    extern "C" __global__ void __launch_bounds__(32 * S6_WARP_WPB, 10)               \
        s6_warp_##NAME##_p##NPL(S6Params p) {                                        \
        s6_warp<DT, NPL, false>(p);                                                  \
    }                                                                                \
    extern "C" __global__ void __launch_bounds__(32 * S6_WARP_WPB, 10)               \
        s6_warpsum_##NAME##_p##NPL(S6Params p) {                                     \
        s6_warp<DT, NPL, true>(p);                                                   \
    }
S6_WARP(f32, 0, 2)
S6_WARP(f16, 1, 2)
S6_WARP(bf16, 2, 2)

// Nothing but the launch: the floor a graph replay of back-to-back launches measures
// (benches/kernels.rs).
extern "C" __global__ void s6_noop(S6Params p) {
    s6_pdl_launch_next();
    s6_pdl_wait();
}

S6_CHAN(f32, 0, 8)
S6_CHAN(f16, 1, 16)
S6_CHAN(bf16, 2, 16)
S6_PREFILL_ALL(f32, 0)
S6_PREFILL_ALL(f16, 1)
S6_PREFILL_ALL(bf16, 2)
S6_PREFILL64(f32, 0, 16, 1, 8, 32) S6_PREFILL64(f32, 0, 16, 16, 4, 16)
S6_PREFILL64(f16, 1, 16, 1, 8, 32) S6_PREFILL64(f16, 1, 16, 16, 4, 16)
S6_PREFILL64(bf16, 2, 16, 1, 8, 32) S6_PREFILL64(bf16, 2, 16, 16, 4, 16)
S6_DECODE32(f32, 0)
S6_DECODE32(f16, 1)
S6_DECODE32(bf16, 2)
S6_DECODE_ALL(f32, 0)
S6_DECODE_ALL(f16, 1)
S6_DECODE_ALL(bf16, 2)
