// MatMul for few rows (M < 16: decode steps, matrix-vector products), where the 16x16 tiles of
// matmul.wgsl would leave most invocations idle: one invocation per output element, no
// workgroup memory or barriers; neighbouring invocations read neighbouring columns of b.
// Same bindings and host-side batch offsets as matmul.wgsl.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    nbatch: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read> offs: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gi: vec3<u32>) {
    let batch = gi.z;
    let row = gi.y;
    let col = gi.x;
    if (row >= p.m || col >= p.n) {
        return;
    }
    let ao = offs[2u * batch] + row * p.k;
    let bo = offs[2u * batch + 1u] + col;
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc += f32(a[ao + kk]) * f32(b[bo + kk * p.n]);
    }
    out[batch * p.m * p.n + row * p.n + col] = act(acc);
}
