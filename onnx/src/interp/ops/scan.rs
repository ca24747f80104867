//! `S6Scan` (domain `s6plugin`): the selective scan of `docs/s6scan.md`, computed by
//! `s6_contract::reference` in fp32, on blocks of channels in parallel. Activations of fp16 /
//! bf16 are widened, and `y` narrowed back, as the op's contract says.

use super::{input, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{DataType, Tensor};
use rayon::prelude::*;
use s6_contract::contract::{self, S6Attrs, ScanDims};
use s6_contract::reference::{self, ScanInputs, ScanOutputs};

pub fn register(r: &mut Registry) {
    r.insert((contract::ONNX_DOMAIN, contract::OP_TYPE), s6scan);
}

/// Attribute names TensorRT's ONNX parser may see on the node that are no op flags.
pub(super) const IGNORED_ATTRS: [&str; 2] = ["plugin_version", "plugin_namespace"];

/// The node's `S6Attrs`, through the contract's one reader.
pub fn attrs_of(node: &Node) -> Result<S6Attrs, InterpError> {
    crate::patch::s6node::attrs_of(&node.proto).map_err(|e| node.error(e.to_string()))
}

fn s6scan(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let attrs = attrs_of(node)?;
    let roles = attrs.inputs();
    if inputs.len() != roles.len() {
        return Err(node.error(format!(
            "{} inputs, the flags call for {} ({:?})",
            inputs.len(),
            roles.len(),
            roles.iter().map(|r| r.name()).collect::<Vec<_>>()
        )));
    }
    let mut ts = Vec::with_capacity(roles.len());
    for i in 0..roles.len() {
        ts.push(input(node, inputs, i)?);
    }
    let dt = |t: &Tensor, role: &str| -> Result<contract::DType, InterpError> {
        match t.dtype() {
            DataType::F32 => Ok(contract::DType::F32),
            DataType::F16 => Ok(contract::DType::F16),
            DataType::BF16 => Ok(contract::DType::BF16),
            other => Err(node.error(format!("input '{role}' is {other}"))),
        }
    };
    let dtypes: Vec<contract::DType> = ts
        .iter()
        .zip(&roles)
        .map(|(t, r)| dt(t, r.name()))
        .collect::<Result<_, _>>()?;
    contract::check_dtypes(&attrs, &dtypes).map_err(|e| node.error(e.to_string()))?;
    let act = ts[0].dtype();
    let data: Vec<Vec<f32>> = ts.iter().map(|t| t.to_f32_vec()).collect();
    let packed: Vec<&[f32]> = data.iter().map(|v| v.as_slice()).collect();
    let shapes: Vec<Vec<i64>> = ts
        .iter()
        .map(|t| t.shape.iter().map(|&d| d as i64).collect())
        .collect();
    let shape_refs: Vec<&[i64]> = shapes.iter().map(|s| s.as_slice()).collect();
    let err = |e: s6_contract::ContractError| node.error(e.to_string());
    let dims = contract::infer_dims(&attrs, &shape_refs).map_err(err)?;
    let x = ScanInputs::from_packed(&attrs, &packed).map_err(err)?;
    let out = scan_channel_blocks(&attrs, &dims, &x).map_err(err)?;
    let y = super::elementwise::from_f32(act, dims.act_shape(&attrs).to_vec(), out.y);
    let mut outs = vec![y];
    if attrs.has_last_state {
        outs.push(Tensor::from_f32(
            dims.state_shape().to_vec(),
            out.last_state,
        )?);
    }
    Ok(outs)
}

/// Below this many state updates (B·D·L·N) the scan runs in one piece.
const PARALLEL_MIN: usize = 1 << 16;

/// The fp32 reference scan, split into blocks of channels scanned in parallel: every (batch,
/// channel) row is its own recurrence, so each block is the reference on a narrower problem
/// and the result is the reference's, bit for bit. B and C are shared by all channels of one
/// group; with several groups the scan runs in one piece.
fn scan_channel_blocks(
    attrs: &S6Attrs,
    dims: &ScanDims,
    x: &ScanInputs,
) -> Result<ScanOutputs<f32>, s6_contract::ContractError> {
    let ScanDims {
        batch,
        dim,
        seqlen,
        dstate,
        groups,
    } = *dims;
    let threads = rayon::current_num_threads();
    let work = dims.act_len().saturating_mul(dstate);
    // Lengths as the dims say (the reference reports any other case).
    let act_ok = |v: &[f32]| v.len() == dims.act_len();
    let lens_ok = act_ok(x.u)
        && act_ok(x.delta)
        && x.z.is_none_or(act_ok)
        && x.a.len() == dim * dstate
        && x.d.is_none_or(|v| v.len() == dim)
        && x.delta_bias.is_none_or(|v| v.len() == dim)
        && x.initial_state.is_none_or(|v| v.len() == dims.state_len());
    if threads < 2 || groups != 1 || dim < 2 || work < PARALLEL_MIN || !lens_ok {
        return reference::scan_f32(attrs, dims, x);
    }
    let per = dim.div_ceil((2 * threads).min(dim));
    let act = dims.act_strides(attrs);
    // The channels c0..c1 of an activation, in the same layout.
    let gather = |v: &[f32], c0: usize, c1: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(batch * (c1 - c0) * seqlen);
        for b in 0..batch {
            let base = b * act.batch;
            if attrs.channels_last {
                for t in 0..seqlen {
                    let row = base + t * act.time;
                    out.extend_from_slice(&v[row + c0..row + c1]);
                }
            } else {
                out.extend_from_slice(&v[base + c0 * seqlen..base + c1 * seqlen]);
            }
        }
        out
    };
    let state_rows = |v: &[f32], c0: usize, c1: usize| -> Vec<f32> {
        (0..batch)
            .flat_map(|b| &v[(b * dim + c0) * dstate..(b * dim + c1) * dstate])
            .copied()
            .collect()
    };
    let blocks: Vec<(usize, usize)> = (0..dim)
        .step_by(per)
        .map(|c0| (c0, (c0 + per).min(dim)))
        .collect();
    let parts = blocks
        .par_iter()
        .map(|&(c0, c1)| {
            let (u, delta) = (gather(x.u, c0, c1), gather(x.delta, c0, c1));
            let z = x.z.map(|v| gather(v, c0, c1));
            let init = x.initial_state.map(|v| state_rows(v, c0, c1));
            let sub = ScanInputs {
                u: &u,
                delta: &delta,
                a: &x.a[c0 * dstate..c1 * dstate],
                b: x.b,
                c: x.c,
                d: x.d.map(|v| &v[c0..c1]),
                z: z.as_deref(),
                delta_bias: x.delta_bias.map(|v| &v[c0..c1]),
                initial_state: init.as_deref(),
            };
            let sub_dims = ScanDims::new(batch, c1 - c0, seqlen, dstate, 1);
            reference::scan_f32(attrs, &sub_dims, &sub)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut y = vec![0f32; dims.act_len()];
    let mut last_state = vec![0f32; dims.state_len()];
    for (&(c0, c1), part) in blocks.iter().zip(parts) {
        let w = c1 - c0;
        for b in 0..batch {
            let base = b * act.batch;
            if attrs.channels_last {
                for t in 0..seqlen {
                    let row = base + t * act.time;
                    let src = (b * seqlen + t) * w;
                    y[row + c0..row + c1].copy_from_slice(&part.y[src..src + w]);
                }
            } else {
                let src = b * w * seqlen;
                y[base + c0 * seqlen..base + c1 * seqlen]
                    .copy_from_slice(&part.y[src..src + w * seqlen]);
            }
            let src = b * w * dstate;
            last_state[(b * dim + c0) * dstate..(b * dim + c1) * dstate]
                .copy_from_slice(&part.last_state[src..src + w * dstate]);
        }
    }
    Ok(ScanOutputs { y, last_state })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn vals(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Split into channel blocks on 3 threads, the scan equals the reference in one piece, bit
    /// for bit, for both layouts, every option, batch 2 and a channel count that does not
    /// divide evenly.
    #[test]
    fn channel_blocks_equal_the_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let (b, d, l, n) = (2, 37, 61, 16);
        for (channels_last, bc_channels_last) in [(false, false), (true, true), (true, false)] {
            let attrs = S6Attrs {
                delta_softplus: true,
                has_d: true,
                has_z: true,
                has_delta_bias: true,
                has_initial_state: true,
                has_last_state: true,
                channels_last,
                bc_channels_last,
            };
            let dims = ScanDims::new(b, d, l, n, 1);
            let (u, dt, a) = (vals(b * d * l, 1), vals(b * d * l, 2), vals(d * n, 3));
            let (bm, cm, z) = (vals(b * n * l, 4), vals(b * n * l, 5), vals(b * d * l, 6));
            let (dd, bias, init) = (vals(d, 7), vals(d, 8), vals(b * d * n, 9));
            let x = ScanInputs {
                u: &u,
                delta: &dt,
                a: &a,
                b: &bm,
                c: &cm,
                d: Some(&dd),
                z: Some(&z),
                delta_bias: Some(&bias),
                initial_state: Some(&init),
            };
            assert!(dims.act_len() * n >= PARALLEL_MIN);
            let want = reference::scan_f32(&attrs, &dims, &x).unwrap();
            let got = pool
                .install(|| scan_channel_blocks(&attrs, &dims, &x))
                .unwrap();
            assert_eq!(got.y, want.y, "channels_last {channels_last}");
            assert_eq!(got.last_state, want.last_state);
            assert!(want.y.iter().any(|v| *v != 0.0));
        }
    }
}
