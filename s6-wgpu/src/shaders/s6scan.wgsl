// S6Scan (docs/s6scan.md) as one compute pass. The host prepends `alias act = f32;` or
// `enable f16; alias act = f16;`: `act` is the storage type of the activations (u, delta, B, C,
// z, y); all arithmetic and the state are f32.
//
// A workgroup of 32 invocations handles 32 / nt channels (b, d); the nt invocations of one
// channel split the state dimension N (invocation `lane` owns n = lane, lane + nt, ...). Time
// runs in chunks of TS steps: each invocation advances its state through the chunk, leaving its
// share of y = x . C for every step in workgroup memory; after one barrier, the invocations of
// a channel sum those shares for different steps in parallel and write y. Two barriers per
// chunk instead of a reduction tree per step.

struct Params {
    batch: u32,
    dim: u32,
    seqlen: u32,
    dstate: u32,
    groups: u32,
    flags: u32,
    // Workgroups along x; the flat workgroup index is y * nwg_x + x.
    nwg_x: u32,
    // Invocations per channel: a power of two, at most 32.
    nt: u32,
    // Element strides of u, delta, z and y: batch, channel, time.
    act_sb: u32,
    act_sd: u32,
    act_sl: u32,
    pad0: u32,
    // Element strides of B and C: batch, group, state, time.
    bc_sb: u32,
    bc_sg: u32,
    bc_sn: u32,
    bc_sl: u32,
    // Element offsets into `acts` (u, delta, B, C, z) and `fp` (A, D, delta_bias, initial_state).
    off_u: u32,
    off_delta: u32,
    off_b: u32,
    off_c: u32,
    off_z: u32,
    off_a: u32,
    off_dskip: u32,
    off_dbias: u32,
    off_init: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

const F_SOFTPLUS: u32 = 1u;
const F_D: u32 = 2u;
const F_Z: u32 = 4u;
const F_BIAS: u32 = 8u;
const F_INIT: u32 = 16u;
const F_LAST: u32 = 32u;

const WG: u32 = 32u;
// State slots per invocation: N <= 32 * MAXS.
const MAXS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> acts: array<act>;
@group(0) @binding(2) var<storage, read> fp: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;
@group(0) @binding(4) var<storage, read_write> last: array<f32>;

// Steps per chunk.
const TS: u32 = 32u;

// part[s * WG + lid]: invocation lid's share of y at step s of the chunk.
var<workgroup> part: array<f32, 1024>;

// softplus with mamba_ssm's threshold; log(1 + e) through the log1p trick so that very
// negative inputs keep their relative accuracy.
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
    let chan = (wid.y * p.nwg_x + wid.x) * (WG / nt) + lid / nt;
    let lane = lid % nt;
    // Invocations past the last channel still take part in every barrier.
    let valid = chan < p.batch * p.dim;
    let b = chan / p.dim;
    let d = chan % p.dim;
    let g = d / (p.dim / p.groups);
    let ns = p.dstate;

    var x: array<f32, MAXS>;
    if (valid && (p.flags & F_INIT) != 0u) {
        for (var k = 0u; k < MAXS; k++) {
            let n = lane + k * nt;
            if (n < ns) {
                x[k] = fp[p.off_init + chan * ns + n];
            }
        }
    }
    var dskip = 0.0;
    var dbias = 0.0;
    if (valid && (p.flags & F_D) != 0u) {
        dskip = fp[p.off_dskip + d];
    }
    if (valid && (p.flags & F_BIAS) != 0u) {
        dbias = fp[p.off_dbias + d];
    }

    let a_row = p.off_a + d * ns;
    let act_base = b * p.act_sb + d * p.act_sd;
    let bc_base = b * p.bc_sb + g * p.bc_sg;
    // First invocation of this channel in the workgroup.
    let chan_lid = lid - lane;
    for (var l0 = 0u; l0 < p.seqlen; l0 += TS) {
        // Steps in this chunk (uniform: a decode step runs one, not TS).
        let steps = min(TS, p.seqlen - l0);
        for (var s = 0u; s < steps; s++) {
            let l = l0 + s;
            var share = 0.0;
            if (valid) {
                let ai = act_base + l * p.act_sl;
                var dt = f32(acts[p.off_delta + ai]) + dbias;
                if ((p.flags & F_SOFTPLUS) != 0u) {
                    dt = softplus(dt);
                }
                let du = dt * f32(acts[p.off_u + ai]);
                let bc0 = bc_base + l * p.bc_sl;
                for (var k = 0u; k < MAXS; k++) {
                    let n = lane + k * nt;
                    if (n < ns) {
                        let bi = bc0 + n * p.bc_sn;
                        x[k] = exp(dt * fp[a_row + n]) * x[k] + du * f32(acts[p.off_b + bi]);
                        share += x[k] * f32(acts[p.off_c + bi]);
                    }
                }
            }
            part[s * WG + lid] = share;
        }
        workgroupBarrier();
        // Invocation `lane` of the channel finishes steps lane, lane + nt, ... of the chunk.
        if (valid) {
            for (var s = lane; s < steps; s += nt) {
                var out = 0.0;
                for (var j = 0u; j < nt; j++) {
                    out += part[s * WG + chan_lid + j];
                }
                let ai = act_base + (l0 + s) * p.act_sl;
                out += f32(acts[p.off_u + ai]) * dskip;
                if ((p.flags & F_Z) != 0u) {
                    let zz = f32(acts[p.off_z + ai]);
                    out = out * (zz / (1.0 + exp(-zz)));
                }
                y[ai] = act(out);
            }
        }
        // `part` is overwritten by the next chunk.
        workgroupBarrier();
    }

    if (valid && (p.flags & F_LAST) != 0u) {
        for (var k = 0u; k < MAXS; k++) {
            let n = lane + k * nt;
            if (n < ns) {
                last[chan * ns + n] = x[k];
            }
        }
    }
}
