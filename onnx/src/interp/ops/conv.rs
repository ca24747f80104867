//! Conv over any number of spatial axes (Mamba's causal depthwise 1-D conv among them):
//! groups, pads, strides, dilations, auto_pad, bias. f32 compute, parallel over (batch,
//! output channel).

use super::elementwise::from_f32;
use super::{input, opt_input, strides, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::Tensor;
use rayon::prelude::*;

pub fn register(r: &mut Registry) {
    r.insert(("", "Conv"), conv);
}

/// Per spatial axis: pad before, pad after, output size.
fn geometry(
    node: &Node,
    in_sp: &[usize],
    k: &[usize],
    stride: &[usize],
    dil: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), InterpError> {
    let s = in_sp.len();
    let auto_pad = node.attrs.string("auto_pad")?.unwrap_or("NOTSET");
    let mut pads = vec![0usize; 2 * s];
    match auto_pad {
        "NOTSET" => {
            if let Some(p) = node.attrs.ints("pads")? {
                if p.len() != 2 * s || p.iter().any(|&v| v < 0) {
                    return Err(node.error(format!("pads {p:?} for {s} spatial axes")));
                }
                pads = p.iter().map(|&v| v as usize).collect();
            }
        }
        "VALID" => {}
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..s {
                let out = in_sp[i].div_ceil(stride[i]);
                let need = ((out.max(1) - 1) * stride[i] + (k[i] - 1) * dil[i] + 1)
                    .saturating_sub(in_sp[i]);
                let (small, big) = (need / 2, need - need / 2);
                if auto_pad == "SAME_UPPER" {
                    pads[i] = small;
                    pads[i + s] = big;
                } else {
                    pads[i] = big;
                    pads[i + s] = small;
                }
            }
        }
        other => return Err(node.error(format!("auto_pad '{other}' unknown"))),
    }
    let mut out = Vec::with_capacity(s);
    for i in 0..s {
        let span = (k[i] - 1) * dil[i] + 1;
        let padded = in_sp[i] + pads[i] + pads[i + s];
        if padded < span {
            return Err(node.error(format!(
                "kernel {k:?} (dilations {dil:?}) larger than padded input {in_sp:?}"
            )));
        }
        out.push((padded - span) / stride[i] + 1);
    }
    Ok((pads[..s].to_vec(), out))
}

fn conv(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let w = input(node, inputs, 1)?;
    let bias = opt_input(inputs, 2);
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(node.error(format!(
            "X {:?} and W {:?} must be (N, C, spatial...) and (M, C/group, kernel...)",
            x.shape, w.shape
        )));
    }
    let s = x.rank() - 2;
    let (n, c) = (x.shape[0], x.shape[1]);
    let (m, cg) = (w.shape[0], w.shape[1]);
    let group = node.attrs.int_or("group", 1)?.max(1) as usize;
    if c != cg * group || m % group != 0 {
        return Err(node.error(format!(
            "channels: X has {c}, W {:?} with group {group}",
            w.shape
        )));
    }
    let k: Vec<usize> = w.shape[2..].to_vec();
    if let Some(ks) = node.attrs.ints("kernel_shape")? {
        if ks.iter().map(|&v| v as usize).collect::<Vec<_>>() != k {
            return Err(node.error(format!(
                "kernel_shape {ks:?} disagrees with W {:?}",
                w.shape
            )));
        }
    }
    let ones = |name: &str| -> Result<Vec<usize>, InterpError> {
        Ok(match node.attrs.ints(name)? {
            Some(v) if v.len() == s && v.iter().all(|&x| x > 0) => {
                v.iter().map(|&x| x as usize).collect()
            }
            Some(v) => return Err(node.error(format!("{name} {v:?} for {s} spatial axes"))),
            None => vec![1; s],
        })
    };
    let stride = ones("strides")?;
    let dil = ones("dilations")?;
    let in_sp = &x.shape[2..];
    let (pad, out_sp) = geometry(node, in_sp, &k, &stride, &dil)?;
    if let Some(b) = bias {
        if b.len() != m {
            return Err(node.error(format!("bias has {} values for {m} channels", b.len())));
        }
    }

    let mut out_shape = vec![x.shape[0], m];
    out_shape.extend_from_slice(&out_sp);
    super::alloc_len(node, &out_shape, 4)?;
    let xv = x.to_f32_vec();
    let wv = w.to_f32_vec();
    let bv = bias.map(|b| b.to_f32_vec());
    let in_plane: usize = in_sp.iter().product();
    let out_plane: usize = out_sp.iter().product();
    let k_plane: usize = k.iter().product();
    let in_st = strides(in_sp);
    let k_st = strides(&k);
    let out_st = strides(&out_sp);
    let mg = m / group;
    let mut out = vec![0.0f32; n * m * out_plane];
    out.par_chunks_mut(out_plane.max(1))
        .enumerate()
        .for_each(|(nm, plane)| {
            let (b, oc) = (nm / m, nm % m);
            let g = oc / mg;
            let w_oc = &wv[oc * cg * k_plane..(oc + 1) * cg * k_plane];
            if s == 1 {
                // 1-D (Mamba's causal conv): the general loop below without its per-tap
                // index arithmetic, same taps in the same order.
                let (len, st, dl, pd) = (in_sp[0] as isize, stride[0], dil[0], pad[0] as isize);
                for (o, val) in plane.iter_mut().enumerate() {
                    let mut acc = bv.as_ref().map_or(0.0, |bv| bv[oc]);
                    for kk in 0..k_plane {
                        let p = (o * st + kk * dl) as isize - pd;
                        if p < 0 || p >= len {
                            continue;
                        }
                        for ci in 0..cg {
                            let ch = g * cg + ci;
                            acc +=
                                xv[(b * c + ch) * in_plane + p as usize] * w_oc[ci * k_plane + kk];
                        }
                    }
                    *val = acc;
                }
                return;
            }
            let mut pos = vec![0usize; s];
            for (o, val) in plane.iter_mut().enumerate() {
                for i in 0..s {
                    pos[i] = (o / out_st[i]) % out_sp[i];
                }
                let mut acc = bv.as_ref().map_or(0.0, |bv| bv[oc]);
                for kk in 0..k_plane {
                    // Input offset of this kernel tap, or skip it if it lands in padding.
                    let mut off = 0usize;
                    let mut inside = true;
                    for i in 0..s {
                        let kpos = (kk / k_st[i]) % k[i];
                        let p = (pos[i] * stride[i] + kpos * dil[i]) as isize - pad[i] as isize;
                        if p < 0 || p >= in_sp[i] as isize {
                            inside = false;
                            break;
                        }
                        off += p as usize * in_st[i];
                    }
                    if !inside {
                        continue;
                    }
                    for ci in 0..cg {
                        let ch = g * cg + ci;
                        acc += xv[(b * c + ch) * in_plane + off] * w_oc[ci * k_plane + kk];
                    }
                }
                *val = acc;
            }
        });
    let mut shape = vec![n, m];
    shape.extend_from_slice(&out_sp);
    Ok(vec![from_f32(x.dtype(), shape, out)])
}
