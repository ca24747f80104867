//! Resize (opsets 11–19): `nearest` and `linear` (n-linear, one axis at a time), the common
//! coordinate transformation modes, sizes or scales, the `axes` attribute of opset 18.
//! `cubic`, `tf_crop_and_resize`, antialiasing and aspect-ratio policies other than
//! `stretch` are refused with an error naming them.

use super::{input, norm_axis, opt_input, strides, Registry};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{Tensor, TensorData};

/// Largest output accepted (elements): a corrupt scale must not exhaust memory.
const MAX_ELEMENTS: usize = 1 << 28;

pub fn register(r: &mut Registry) {
    r.insert(("", "Resize"), resize);
}

#[derive(Clone, Copy)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

impl Coord {
    /// Input coordinate of output index `x` on an axis of `len_in` → `len_out` at `scale`.
    fn map(self, x: usize, scale: f64, len_in: usize, len_out: usize) -> f64 {
        let x = x as f64;
        match self {
            Coord::HalfPixel => (x + 0.5) / scale - 0.5,
            Coord::HalfPixelSymmetric => {
                let adjustment = len_out as f64 / (scale * len_in as f64);
                let center = len_in as f64 / 2.0;
                center * (1.0 - adjustment) + (x + 0.5) / scale - 0.5
            }
            Coord::PytorchHalfPixel if len_out > 1 => (x + 0.5) / scale - 0.5,
            Coord::PytorchHalfPixel => 0.0,
            Coord::AlignCorners if len_out > 1 => {
                x * (len_in as f64 - 1.0) / (len_out as f64 - 1.0)
            }
            Coord::AlignCorners => 0.0,
            Coord::Asymmetric => x / scale,
        }
    }
}

#[derive(Clone, Copy)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

impl Nearest {
    fn pick(self, c: f64) -> f64 {
        let half = (c - c.floor() - 0.5).abs() < 1e-12;
        match self {
            Nearest::RoundPreferFloor if half => c.floor(),
            Nearest::RoundPreferCeil if half => c.ceil(),
            Nearest::RoundPreferFloor | Nearest::RoundPreferCeil => c.round(),
            Nearest::Floor => c.floor(),
            Nearest::Ceil => c.ceil(),
        }
    }
}

fn resize(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    if !x.dtype().is_float() {
        return Err(node.error(format!("needs a float tensor, got {}", x.dtype())));
    }
    let r = x.rank();
    let a = &node.attrs;
    let mode = a.string("mode")?.unwrap_or("nearest");
    let coord = match a
        .string("coordinate_transformation_mode")?
        .unwrap_or("half_pixel")
    {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        other => {
            return Err(node.error(format!(
                "coordinate_transformation_mode '{other}' is not supported"
            )))
        }
    };
    let nearest = match a.string("nearest_mode")?.unwrap_or("round_prefer_floor") {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => return Err(node.error(format!("nearest_mode '{other}' is not supported"))),
    };
    if mode != "nearest" && mode != "linear" {
        return Err(node.error(format!(
            "mode '{mode}' is not supported (nearest and linear are)"
        )));
    }
    if a.int_or("antialias", 0)? != 0 {
        return Err(node.error("antialias = 1 is not supported"));
    }
    if a.string("keep_aspect_ratio_policy")?.unwrap_or("stretch") != "stretch" {
        return Err(node.error("keep_aspect_ratio_policy other than 'stretch' is not supported"));
    }
    // The axes the scales / sizes refer to (opset 18), default all.
    let axes: Vec<usize> = match a.ints("axes")? {
        Some(v) => v
            .iter()
            .map(|&ax| norm_axis(node, ax, r))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    // Inputs: X, roi, scales, sizes (opset ≥ 11); an empty tensor counts as absent.
    let scales = opt_input(inputs, 2).filter(|t| !t.is_empty());
    let sizes = opt_input(inputs, 3).filter(|t| !t.is_empty());
    let mut scale = vec![1f64; r];
    let mut out_shape = x.shape.clone();
    match (scales, sizes) {
        (Some(_), Some(_)) => return Err(node.error("both scales and sizes are given")),
        (Some(s), None) => {
            let s = s.to_f64_vec();
            if s.len() != axes.len() {
                return Err(node.error(format!("{} scales for {} axes", s.len(), axes.len())));
            }
            for (&ax, &v) in axes.iter().zip(&s) {
                if v.is_nan() || v <= 0.0 || !v.is_finite() {
                    return Err(node.error(format!("scale {v} must be positive")));
                }
                scale[ax] = v;
                out_shape[ax] = (x.shape[ax] as f64 * v).floor() as usize;
            }
        }
        (None, Some(s)) => {
            let s = s.to_i64_vec();
            if s.len() != axes.len() {
                return Err(node.error(format!("{} sizes for {} axes", s.len(), axes.len())));
            }
            for (&ax, &v) in axes.iter().zip(&s) {
                if v < 0 {
                    return Err(node.error(format!("size {v} is negative")));
                }
                out_shape[ax] = v as usize;
                scale[ax] = v as f64 / x.shape[ax].max(1) as f64;
            }
        }
        (None, None) => return Err(node.error("neither scales nor sizes is given")),
    }
    // Refuse outputs far beyond the input (a corrupt scale, say) before allocating them.
    let n_out = out_shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= x.len().max(1).saturating_mul(1 << 12) && n <= MAX_ELEMENTS)
        .ok_or_else(|| node.error(format!("output shape {out_shape:?} is too large")))?;
    if x.is_empty() {
        if n_out > 0 {
            return Err(node.error("cannot resize an empty tensor to a non-empty one"));
        }
        return Ok(vec![Tensor::zeros(x.dtype(), out_shape)]);
    }

    // One axis at a time: separable for linear, exact for nearest.
    let mut cur_shape = x.shape.clone();
    let mut cur = x.to_f64_vec();
    for ax in 0..r {
        if out_shape[ax] == cur_shape[ax] && scale[ax] == 1.0 {
            continue;
        }
        let (len_in, len_out) = (cur_shape[ax], out_shape[ax]);
        // Per output index: (i0, i1, w1) with y = (1 - w1)·x[i0] + w1·x[i1].
        let taps: Vec<(usize, usize, f64)> = (0..len_out)
            .map(|o| {
                let c = coord.map(o, scale[ax], len_in, len_out);
                let last = len_in.saturating_sub(1) as f64;
                if mode == "nearest" {
                    let i = nearest.pick(c).clamp(0.0, last) as usize;
                    (i, i, 0.0)
                } else {
                    let c = c.clamp(0.0, last);
                    let i0 = c.floor() as usize;
                    let i1 = (i0 + 1).min(len_in.saturating_sub(1));
                    (i0, i1, c - i0 as f64)
                }
            })
            .collect();
        let mut next_shape = cur_shape.clone();
        next_shape[ax] = len_out;
        let st = strides(&cur_shape);
        let outer: usize = cur_shape[..ax].iter().product();
        let inner: usize = cur_shape[ax + 1..].iter().product();
        let mut next = Vec::with_capacity(outer * len_out * inner);
        for o in 0..outer {
            let base = o * len_in * inner;
            for &(i0, i1, w) in &taps {
                for k in 0..inner {
                    let a = cur[base + i0 * st[ax] + k];
                    let b = cur[base + i1 * st[ax] + k];
                    next.push(if w == 0.0 { a } else { a + (b - a) * w });
                }
            }
        }
        cur = next;
        cur_shape = next_shape;
    }
    Ok(vec![Tensor {
        shape: out_shape,
        data: TensorData::from_f64_iter(x.dtype(), cur.into_iter()),
    }])
}
