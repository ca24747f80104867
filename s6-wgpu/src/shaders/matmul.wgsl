// Batched MatMul: out[i] = a[i] (M x K) * b[i] (K x N), row-major, f32 accumulation. The host
// prepends the `act` alias (f32 or f16 storage) and resolves batch broadcasting into `offs`:
// the element offsets of a[i] and b[i] for each output batch i (= workgroup z).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    nbatch: u32,
}

const T: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read> offs: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<act>;

var<workgroup> ta: array<f32, 256>;
var<workgroup> tb: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
    let batch = wid.z;
    let row = wid.y * T + li.y;
    let col = wid.x * T + li.x;
    let ao = offs[2u * batch];
    let bo = offs[2u * batch + 1u];
    var acc = 0.0;
    let ntiles = (p.k + T - 1u) / T;
    for (var t = 0u; t < ntiles; t++) {
        let ka = t * T + li.x;
        let kb = t * T + li.y;
        var va = 0.0;
        if (row < p.m && ka < p.k) {
            va = f32(a[ao + row * p.k + ka]);
        }
        var vb = 0.0;
        if (kb < p.k && col < p.n) {
            vb = f32(b[bo + kb * p.n + col]);
        }
        ta[li.y * T + li.x] = va;
        tb[li.y * T + li.x] = vb;
        workgroupBarrier();
        for (var kk = 0u; kk < T; kk++) {
            acc += ta[li.y * T + kk] * tb[kk * T + li.x];
        }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) {
        out[batch * p.m * p.n + row * p.n + col] = act(acc);
    }
}
