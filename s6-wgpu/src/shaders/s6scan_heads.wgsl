// S6ScanHeads (docs/s6scan_heads.md, Mamba2's scan) as one compute pass. The host prepends
// `alias act = f32;` or `enable f16; alias act = f16;`: `act` is the storage type of x, dt, B,
// C, z and y; all arithmetic and the state are f32.
//
// One row is one (batch, head, p) of the state (N entries). A workgroup of 32 invocations holds
// 32 / nt rows; the nt invocations of a row split N (invocation `lane` owns n = lane, lane + nt,
// ...). dt and A are per head: each invocation computes the step size and the decay
// exp(dt·A_h) once per step and applies it to all its state entries, so a step costs nt
// exponentials per row, not N. Time runs in chunks of TS steps, as in s6scan.wgsl: each
// invocation leaves its share of y = s·C for every step of the chunk in workgroup memory, then
// the row's invocations sum those shares for different steps in parallel.

struct Params {
    batch: u32,
    seqlen: u32,
    heads: u32,
    headdim: u32,
    dstate: u32,
    groups: u32,
    flags: u32,
    // Workgroups along x; the flat workgroup index is y * nwg_x + x.
    nwg_x: u32,
    // Invocations per row: a power of two, at most 32.
    nt: u32,
    // Element offsets into `acts` (x, dt, B, C, z) and `fp` (A, D, dt_bias, dt_limit, state).
    off_x: u32,
    off_dt: u32,
    off_b: u32,
    off_c: u32,
    off_z: u32,
    off_a: u32,
    off_dskip: u32,
    off_dbias: u32,
    off_limit: u32,
    off_init: u32,
    pad0: u32,
}

const F_SOFTPLUS: u32 = 1u;
const F_D: u32 = 2u;
const F_Z: u32 = 4u;
const F_BIAS: u32 = 8u;
const F_LIMIT: u32 = 16u;
const F_INIT: u32 = 32u;
const F_LAST: u32 = 64u;

const WG: u32 = 32u;
// State slots per invocation: N <= 32 * MAXS.
const MAXS: u32 = 8u;
// Steps per chunk.
const TS: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> acts: array<act>;
@group(0) @binding(2) var<storage, read> fp: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;
@group(0) @binding(4) var<storage, read_write> last: array<f32>;

// part[s * WG + lid]: invocation lid's share of y at step s of the chunk.
var<workgroup> part: array<f32, 1024>;

// softplus with the contract's threshold 20 (as in s6scan.wgsl).
fn softplus(x: f32) -> f32 {
    if (x > 20.0) {
        return x;
    }
    let e = exp(x);
    let w = 1.0 + e;
    if (w == 1.0) {
        return e;
    }
    return log(w) * (e / (w - 1.0));
}

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let nt = p.nt;
    // row = (b · H + h) · P + pp, which is also the row's offset / N in the state tensors.
    let row = (wid.y * p.nwg_x + wid.x) * (WG / nt) + lid / nt;
    let lane = lid % nt;
    // Invocations past the last row still take part in every barrier.
    let valid = row < p.batch * p.heads * p.headdim;
    let pp = row % p.headdim;
    let bh = row / p.headdim;
    let h = bh % p.heads;
    let b = bh / p.heads;
    let g = h / (p.heads / p.groups);
    let ns = p.dstate;

    var s: array<f32, MAXS>;
    if (valid && (p.flags & F_INIT) != 0u) {
        for (var k = 0u; k < MAXS; k++) {
            let n = lane + k * nt;
            if (n < ns) {
                s[k] = fp[p.off_init + row * ns + n];
            }
        }
    }
    let a_h = fp[p.off_a + h];
    var dskip = 0.0;
    var dbias = 0.0;
    var lo = 0.0;
    var hi = 0.0;
    if ((p.flags & F_D) != 0u) {
        dskip = fp[p.off_dskip + h];
    }
    if ((p.flags & F_BIAS) != 0u) {
        dbias = fp[p.off_dbias + h];
    }
    if ((p.flags & F_LIMIT) != 0u) {
        lo = fp[p.off_limit];
        hi = fp[p.off_limit + 1u];
    }
    // First invocation of this row in the workgroup.
    let row_lid = lid - lane;
    for (var l0 = 0u; l0 < p.seqlen; l0 += TS) {
        // Steps in this chunk (uniform: a decode step runs one, not TS).
        let steps = min(TS, p.seqlen - l0);
        for (var st = 0u; st < steps; st++) {
            let bl = b * p.seqlen + l0 + st;
            var share = 0.0;
            if (valid) {
                var dt = f32(acts[p.off_dt + bl * p.heads + h]) + dbias;
                if ((p.flags & F_SOFTPLUS) != 0u) {
                    dt = softplus(dt);
                }
                if ((p.flags & F_LIMIT) != 0u) {
                    // torch.clamp: max with lo, then min with hi.
                    dt = min(max(dt, lo), hi);
                }
                let decay = exp(dt * a_h);
                let dx = dt * f32(acts[p.off_x + (bl * p.heads + h) * p.headdim + pp]);
                let bc0 = (bl * p.groups + g) * ns;
                for (var k = 0u; k < MAXS; k++) {
                    let n = lane + k * nt;
                    if (n < ns) {
                        s[k] = decay * s[k] + dx * f32(acts[p.off_b + bc0 + n]);
                        share += s[k] * f32(acts[p.off_c + bc0 + n]);
                    }
                }
            }
            part[st * WG + lid] = share;
        }
        workgroupBarrier();
        // Invocation `lane` of the row finishes steps lane, lane + nt, ... of the chunk.
        if (valid) {
            for (var st = lane; st < steps; st += nt) {
                var out = 0.0;
                for (var j = 0u; j < nt; j++) {
                    out += part[st * WG + row_lid + j];
                }
                let bl = b * p.seqlen + l0 + st;
                let xi = (bl * p.heads + h) * p.headdim + pp;
                out += f32(acts[p.off_x + xi]) * dskip;
                if ((p.flags & F_Z) != 0u) {
                    let zz = f32(acts[p.off_z + xi]);
                    out = out * (zz / (1.0 + exp(-zz)));
                }
                y[xi] = act(out);
            }
        }
        // `part` is overwritten by the next chunk.
        workgroupBarrier();
    }

    if (valid && (p.flags & F_LAST) != 0u) {
        for (var k = 0u; k < MAXS; k++) {
            let n = lane + k * nt;
            if (n < ns) {
                last[row * ns + n] = s[k];
            }
        }
    }
}
