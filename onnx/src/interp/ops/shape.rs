//! Shape and data-movement ops: Shape, Reshape, (Un)Squeeze, Flatten, Concat, Split, Slice,
//! Gather, Expand, Transpose, Tile, Pad, Trilu, Constant, ConstantOfShape, Range, Size.

use super::{
    alloc_len, broadcast_index, broadcast_shapes, input, norm_axis, opt_input, strides, Registry,
};
use crate::interp::error::InterpError;
use crate::interp::graph::Node;
use crate::interp::tensor::{Tensor, TensorData};
use crate::map_data;

pub fn register(r: &mut Registry) {
    r.insert(("", "Shape"), shape);
    r.insert(("", "Size"), size);
    r.insert(("", "Reshape"), reshape);
    r.insert(("", "Unsqueeze"), unsqueeze);
    r.insert(("", "Squeeze"), squeeze);
    r.insert(("", "Flatten"), flatten);
    r.insert(("", "Concat"), concat);
    r.insert(("", "Split"), split);
    r.insert(("", "Slice"), slice);
    r.insert(("", "Gather"), gather);
    r.insert(("", "Expand"), expand);
    r.insert(("", "Transpose"), transpose);
    r.insert(("", "Tile"), tile);
    r.insert(("", "Constant"), constant);
    r.insert(("", "ConstantOfShape"), constant_of_shape);
    r.insert(("", "Range"), range);
    r.insert(("", "Pad"), pad);
    r.insert(("", "Trilu"), trilu);
}

/// Elements of `data` at `idx`, same type.
pub(crate) fn take(data: &TensorData, idx: &[usize]) -> TensorData {
    map_data!(data, v => idx.iter().map(|&i| v[i]).collect())
}

fn i64_tensor(v: Vec<i64>) -> Tensor {
    Tensor {
        shape: vec![v.len()],
        data: TensorData::I64(v),
    }
}

fn shape(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let r = x.rank() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(node.attrs.int_or("start", 0)?);
    let end = clamp(node.attrs.int_or("end", r)?);
    let dims = x.shape[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Ok(vec![i64_tensor(dims)])
}

fn size(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    Ok(vec![Tensor::scalar(TensorData::I64(vec![x.len() as i64]))])
}

/// Resolves a Reshape target (0 = copy the input's dim unless `allowzero`, -1 = infer).
pub(crate) fn reshape_target(
    node: &Node,
    in_shape: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, InterpError> {
    let total: usize = in_shape.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*in_shape.get(i).ok_or_else(|| {
                node.error(format!("shape {spec:?}: 0 at axis {i} beyond input rank"))
            })?),
            s if s >= 0 => out.push(s as usize),
            _ => return Err(node.error(format!("invalid target shape {spec:?}"))),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || total % known != 0 {
            return Err(node.error(format!("cannot reshape {in_shape:?} to {spec:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(node.error(format!("cannot reshape {in_shape:?} to {spec:?}")));
    }
    Ok(out)
}

fn reshape(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let spec = match opt_input(inputs, 1) {
        Some(s) => s.to_i64_vec(),
        None => node
            .attrs
            .ints("shape")?
            .ok_or_else(|| node.error("no target shape"))?,
    };
    let allowzero = node.attrs.int_or("allowzero", 0)? != 0;
    let shape = reshape_target(node, &x.shape, &spec, allowzero)?;
    Ok(vec![Tensor {
        shape,
        data: x.data.clone(),
    }])
}

/// Axes from input `i` (newer opsets) or the `axes` attribute (older ones).
fn axes_arg(
    node: &Node,
    inputs: &[Option<&Tensor>],
    i: usize,
) -> Result<Option<Vec<i64>>, InterpError> {
    match opt_input(inputs, i) {
        Some(t) => Ok(Some(t.to_i64_vec())),
        None => node.attrs.ints("axes"),
    }
}

fn unsqueeze(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let axes = axes_arg(node, inputs, 1)?.ok_or_else(|| node.error("no axes"))?;
    let out_rank = x.rank() + axes.len();
    let mut ax: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(node, a, out_rank))
        .collect::<Result<_, _>>()?;
    ax.sort_unstable();
    if ax.windows(2).any(|w| w[0] == w[1]) {
        return Err(node.error(format!("repeated axis in {axes:?}")));
    }
    let mut shape = Vec::with_capacity(out_rank);
    let mut src = x.shape.iter();
    for i in 0..out_rank {
        if ax.binary_search(&i).is_ok() {
            shape.push(1);
        } else {
            shape.push(*src.next().expect("rank arithmetic"));
        }
    }
    Ok(vec![Tensor {
        shape,
        data: x.data.clone(),
    }])
}

fn squeeze(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let shape = match axes_arg(node, inputs, 1)? {
        None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let ax: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(node, a, x.rank()))
                .collect::<Result<_, _>>()?;
            for &a in &ax {
                if x.shape[a] != 1 {
                    return Err(node.error(format!(
                        "cannot squeeze axis {a} of size {} (shape {:?})",
                        x.shape[a], x.shape
                    )));
                }
            }
            x.shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !ax.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
    };
    Ok(vec![Tensor {
        shape,
        data: x.data.clone(),
    }])
}

fn flatten(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let r = x.rank() as i64;
    let axis = node.attrs.int_or("axis", 1)?;
    let axis = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&axis) {
        return Err(node.error(format!("axis {axis} out of range for rank {r}")));
    }
    let outer: usize = x.shape[..axis as usize].iter().product();
    let inner: usize = x.shape[axis as usize..].iter().product();
    Ok(vec![Tensor {
        shape: vec![outer, inner],
        data: x.data.clone(),
    }])
}

fn concat(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
    let first = *parts.first().ok_or_else(|| node.error("no inputs"))?;
    let axis = node
        .attrs
        .int("axis")?
        .ok_or_else(|| node.error("attribute 'axis' is required"))?;
    let axis = norm_axis(node, axis, first.rank())?;
    let mut out_shape = first.shape.clone();
    out_shape[axis] = 0;
    for p in &parts {
        if p.dtype() != first.dtype() || p.rank() != first.rank() {
            return Err(node.error(format!(
                "inputs disagree: {:?} {} vs {:?} {}",
                first.shape,
                first.dtype(),
                p.shape,
                p.dtype()
            )));
        }
        for (i, (&a, &b)) in first.shape.iter().zip(&p.shape).enumerate() {
            if i != axis && a != b {
                return Err(node.error(format!(
                    "shapes {:?} and {:?} differ off axis {axis}",
                    first.shape, p.shape
                )));
            }
        }
        out_shape[axis] += p.shape[axis];
    }
    let outer: usize = out_shape[..axis].iter().product();
    let inner: usize = out_shape[axis + 1..].iter().product();
    macro_rules! cat {
        ($($var:ident),*) => {
            match &first.data {
                $(TensorData::$var(_) => {
                    let mut out = Vec::with_capacity(out_shape.iter().product());
                    for o in 0..outer {
                        for p in &parts {
                            let TensorData::$var(v) = &p.data else { unreachable!() };
                            let chunk = p.shape[axis] * inner;
                            out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
                        }
                    }
                    TensorData::$var(out)
                })*
            }
        };
    }
    let data = cat!(F32, F16, BF16, F64, I64, I32, I16, I8, U8, U16, U32, U64, Bool);
    Ok(vec![Tensor {
        shape: out_shape,
        data,
    }])
}

/// Copies the sub-range `[lo, hi)` of `axis`.
fn narrow(x: &Tensor, axis: usize, lo: usize, hi: usize) -> Tensor {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let dim = x.shape[axis];
    let mut shape = x.shape.clone();
    shape[axis] = hi - lo;
    let data = map_data!(&x.data, v => {
        let mut out = Vec::with_capacity(outer * (hi - lo) * inner);
        for o in 0..outer {
            out.extend_from_slice(&v[(o * dim + lo) * inner..(o * dim + hi) * inner]);
        }
        out
    });
    Tensor { shape, data }
}

fn split(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let axis = norm_axis(node, node.attrs.int_or("axis", 0)?, x.rank())?;
    let dim = x.shape[axis];
    let n_out = node.outputs.len();
    let sizes: Vec<usize> = match opt_input(inputs, 1) {
        Some(s) => s.to_i64_vec().iter().map(|&v| v.max(0) as usize).collect(),
        None => match node.attrs.ints("split")? {
            Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
            None => {
                let n = node.attrs.int("num_outputs")?.unwrap_or(n_out as i64);
                if n <= 0 || n as usize != n_out {
                    return Err(node.error(format!("num_outputs {n} for {n_out} outputs")));
                }
                let n = n as usize;
                // Opset 18: uneven splits give ceil(dim / n) to all but the last.
                let chunk = dim.div_ceil(n);
                (0..n)
                    .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                    .collect()
            }
        },
    };
    let total = sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b));
    if total != Some(dim) || sizes.len() != n_out {
        return Err(node.error(format!(
            "split sizes {sizes:?} do not cover axis {axis} of {:?} with {n_out} outputs",
            x.shape
        )));
    }
    let mut lo = 0;
    Ok(sizes
        .iter()
        .map(|&s| {
            let t = narrow(x, axis, lo, lo + s);
            lo += s;
            t
        })
        .collect())
}

/// ONNX Slice clamping for one axis: returns (start, step, count).
pub(crate) fn slice_range(dim: usize, start: i64, end: i64, step: i64) -> (i64, i64, usize) {
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(-1, d - 1), e.clamp(-1, d - 1))
    };
    let count = if step > 0 {
        if e > s {
            ((e - s) + step - 1) / step
        } else {
            0
        }
    } else if s > e {
        ((s - e) + (-step) - 1) / (-step)
    } else {
        0
    };
    (s, step, count as usize)
}

fn slice(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let from = |i: usize, attr: &str| -> Result<Option<Vec<i64>>, InterpError> {
        match opt_input(inputs, i) {
            Some(t) => Ok(Some(t.to_i64_vec())),
            None if node.opset < 10 => node.attrs.ints(attr),
            None => Ok(None),
        }
    };
    let starts = from(1, "starts")?.ok_or_else(|| node.error("no starts"))?;
    let ends = from(2, "ends")?.ok_or_else(|| node.error("no ends"))?;
    let axes = from(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = opt_input(inputs, 4).map_or_else(|| vec![1; starts.len()], |t| t.to_i64_vec());
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(node.error(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?}, steps {steps:?} differ in length"
        )));
    }
    let r = x.rank();
    let mut start = vec![0i64; r];
    let mut step = vec![1i64; r];
    let mut count = x.shape.clone();
    let mut seen = vec![false; r];
    for k in 0..starts.len() {
        let a = norm_axis(node, axes[k], r)?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(node.error(format!("axis {a} repeated in {axes:?}")));
        }
        if steps[k] == 0 {
            return Err(node.error("step 0"));
        }
        let (s, st, c) = slice_range(x.shape[a], starts[k], ends[k], steps[k]);
        start[a] = s;
        step[a] = st;
        count[a] = c;
    }
    let src = strides(&x.shape);
    let n: usize = count.iter().product();
    if n > 0 && r > 0 && step[r - 1] == 1 {
        // Unit step on the last axis: contiguous runs, copied whole.
        let run = count[r - 1];
        let outer = &count[..r - 1];
        let mut firsts = Vec::with_capacity(n / run);
        let mut ctr = vec![0usize; r - 1];
        for _ in 0..n / run {
            let mut off = start[r - 1];
            for a in 0..r - 1 {
                off += (start[a] + step[a] * ctr[a] as i64) * src[a] as i64;
            }
            firsts.push(off as usize);
            for a in (0..r - 1).rev() {
                ctr[a] += 1;
                if ctr[a] < outer[a] {
                    break;
                }
                ctr[a] = 0;
            }
        }
        let data = map_data!(&x.data, v => {
            let mut out = Vec::with_capacity(n);
            for &f in &firsts {
                out.extend_from_slice(&v[f..f + run]);
            }
            out
        });
        return Ok(vec![Tensor { shape: count, data }]);
    }
    let mut idx = Vec::with_capacity(n);
    let mut ctr = vec![0usize; r];
    for _ in 0..n {
        let mut off = 0i64;
        for a in 0..r {
            off += (start[a] + step[a] * ctr[a] as i64) * src[a] as i64;
        }
        idx.push(off as usize);
        for a in (0..r).rev() {
            ctr[a] += 1;
            if ctr[a] < count[a] {
                break;
            }
            ctr[a] = 0;
        }
    }
    Ok(vec![Tensor {
        shape: count,
        data: take(&x.data, &idx),
    }])
}

fn gather(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let ind = input(node, inputs, 1)?;
    if x.rank() == 0 {
        return Err(node.error("data must have rank ≥ 1"));
    }
    let axis = norm_axis(node, node.attrs.int_or("axis", 0)?, x.rank())?;
    let dim = x.shape[axis];
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut rows = Vec::with_capacity(ind.len());
    for i in ind.to_i64_vec() {
        let j = if i < 0 { i + dim as i64 } else { i };
        if j < 0 || j >= dim as i64 {
            return Err(node.error(format!(
                "index {i} out of range for axis {axis} of size {dim}"
            )));
        }
        rows.push(j as usize);
    }
    let mut idx = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &r in &rows {
            let base = (o * dim + r) * inner;
            idx.extend(base..base + inner);
        }
    }
    let mut shape = x.shape[..axis].to_vec();
    shape.extend_from_slice(&ind.shape);
    shape.extend_from_slice(&x.shape[axis + 1..]);
    Ok(vec![Tensor {
        shape,
        data: take(&x.data, &idx),
    }])
}

fn expand(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let target: Vec<usize> = input(node, inputs, 1)?
        .to_i64_vec()
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    let out_shape = broadcast_shapes(node, &[&x.shape, &target])?;
    let idx = broadcast_index(&x.shape, &out_shape);
    Ok(vec![Tensor {
        shape: out_shape,
        data: take(&x.data, &idx),
    }])
}

/// Transposes `x` by `perm`.
pub(crate) fn permute(x: &Tensor, perm: &[usize]) -> Tensor {
    let r = x.rank();
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return x.clone();
    }
    let src = strides(&x.shape);
    let st: Vec<usize> = perm.iter().map(|&p| src[p]).collect();
    let n = x.len();
    let mut idx = Vec::with_capacity(n);
    let mut ctr = vec![0usize; r];
    let mut off = 0usize;
    for _ in 0..n {
        idx.push(off);
        for a in (0..r).rev() {
            ctr[a] += 1;
            off += st[a];
            if ctr[a] < shape[a] {
                break;
            }
            off -= st[a] * ctr[a];
            ctr[a] = 0;
        }
    }
    Tensor {
        shape,
        data: take(&x.data, &idx),
    }
}

fn transpose(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let r = x.rank();
    let perm: Vec<usize> = match node.attrs.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(node, a, r))
            .collect::<Result<_, _>>()?,
        None => (0..r).rev().collect(),
    };
    let mut check = perm.clone();
    check.sort_unstable();
    if check != (0..r).collect::<Vec<_>>() {
        return Err(node.error(format!("perm {perm:?} is no permutation of rank {r}")));
    }
    Ok(vec![permute(x, &perm)])
}

fn tile(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let reps = input(node, inputs, 1)?.to_i64_vec();
    if reps.len() != x.rank() || reps.iter().any(|&r| r < 0) {
        return Err(node.error(format!("repeats {reps:?} for shape {:?}", x.shape)));
    }
    let shape: Vec<usize> = x
        .shape
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d.checked_mul(r as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| node.error(format!("repeats {reps:?} of {:?} overflow", x.shape)))?;
    let src = strides(&x.shape);
    let n = alloc_len(node, &shape, 8)?;
    let mut idx = Vec::with_capacity(n);
    let mut ctr = vec![0usize; shape.len()];
    for _ in 0..n {
        idx.push(
            ctr.iter()
                .zip(&x.shape)
                .zip(&src)
                .map(|((&c, &d), &s)| (c % d) * s)
                .sum(),
        );
        for a in (0..shape.len()).rev() {
            ctr[a] += 1;
            if ctr[a] < shape[a] {
                break;
            }
            ctr[a] = 0;
        }
    }
    Ok(vec![Tensor {
        shape,
        data: take(&x.data, &idx),
    }])
}

fn constant(node: &Node, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let a = &node.attrs;
    let t = if let Some(t) = a.tensor("value")? {
        t.clone()
    } else if let Some(f) = a.float("value_float")? {
        Tensor::scalar(TensorData::F32(vec![f]))
    } else if let Some(v) = a.floats("value_floats")? {
        Tensor::from_f32(vec![v.len()], v)?
    } else if let Some(i) = a.int("value_int")? {
        Tensor::scalar(TensorData::I64(vec![i]))
    } else if let Some(v) = a.ints("value_ints")? {
        i64_tensor(v)
    } else {
        return Err(
            node.error("no supported value attribute (value, value_float(s), value_int(s))")
        );
    };
    Ok(vec![t])
}

fn constant_of_shape(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let dims = input(node, inputs, 0)?.to_i64_vec();
    if dims.iter().any(|&d| d < 0) {
        return Err(node.error(format!("negative dimension in {dims:?}")));
    }
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let value = node.attrs.tensor("value")?;
    let elem = value.map_or(4, |v| v.dtype().size_bytes());
    let n = alloc_len(node, &shape, elem)?;
    let data = match value {
        Some(v) if v.len() == 1 => {
            map_data!(&v.data, src => vec![src[0]; n])
        }
        Some(v) => return Err(node.error(format!("value must hold one element, has {}", v.len()))),
        None => TensorData::F32(vec![0.0; n]),
    };
    Ok(vec![Tensor { shape, data }])
}

fn range(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let s = input(node, inputs, 0)?;
    let l = input(node, inputs, 1)?;
    let d = input(node, inputs, 2)?;
    let dtype = s.dtype();
    if s.len() != 1 || l.len() != 1 || d.len() != 1 {
        return Err(node.error("start, limit and delta must be scalars"));
    }
    let data = if dtype.is_float() {
        let (s, l, d) = (s.to_f64_vec()[0], l.to_f64_vec()[0], d.to_f64_vec()[0]);
        if d == 0.0 {
            return Err(node.error("delta 0"));
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if !n.is_finite() || n >= u64::MAX as f64 {
            return Err(node.error(format!("range({s}, {l}, {d}) has no finite length")));
        }
        let n = alloc_len(node, &[n as usize], dtype.size_bytes())?;
        TensorData::from_f64_iter(dtype, (0..n).map(|i| s + i as f64 * d))
    } else {
        let (s, l, d) = (s.to_i64_vec()[0], l.to_i64_vec()[0], d.to_i64_vec()[0]);
        if d == 0 {
            return Err(node.error("delta 0"));
        }
        // In i128: `l - s` of two int64 values can overflow.
        let (span, step) = (l as i128 - s as i128, d as i128);
        let n = if (span > 0) == (step > 0) && span != 0 {
            usize::try_from((span.abs() + step.abs() - 1) / step.abs()).unwrap_or(usize::MAX)
        } else {
            0
        };
        let n = alloc_len(node, &[n], 8)?;
        TensorData::I64((0..n as i64).map(|i| s + i * d).collect()).cast(dtype)
    };
    let n = data.len();
    Ok(vec![Tensor {
        shape: vec![n],
        data,
    }])
}

fn pad(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    let r = x.rank();
    let mode = node.attrs.string("mode")?.unwrap_or("constant");
    // Opset ≥ 11: pads (and value, axes) are inputs; before, attributes.
    let raw = match opt_input(inputs, 1) {
        Some(t) => t.to_i64_vec(),
        None => node
            .attrs
            .ints("pads")?
            .ok_or_else(|| node.error("no pads"))?,
    };
    let axes: Vec<usize> = match opt_input(inputs, 3) {
        Some(t) => t
            .to_i64_vec()
            .iter()
            .map(|&a| norm_axis(node, a, r))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    if raw.len() != 2 * axes.len() {
        return Err(node.error(format!(
            "pads {raw:?} for {} axes of {:?}",
            axes.len(),
            x.shape
        )));
    }
    let mut before = vec![0i64; r];
    let mut after = vec![0i64; r];
    for (i, &a) in axes.iter().enumerate() {
        before[a] = raw[i];
        after[a] = raw[i + axes.len()];
    }
    let mut shape = Vec::with_capacity(r);
    for a in 0..r {
        let d = (x.shape[a] as i64)
            .checked_add(before[a])
            .and_then(|d| d.checked_add(after[a]))
            .unwrap_or(-1);
        if d < 0 {
            return Err(node.error(format!("pads {raw:?} crop {:?} below zero", x.shape)));
        }
        shape.push(d as usize);
    }
    let n = alloc_len(node, &shape, 16)?;
    let src = strides(&x.shape);
    // Source index per output element; None = the constant.
    let mut idx: Vec<Option<usize>> = Vec::with_capacity(n);
    let mut ctr = vec![0usize; r];
    for _ in 0..n {
        let mut off = Some(0usize);
        for a in 0..r {
            let d = x.shape[a] as i64;
            let mut p = ctr[a] as i64 - before[a];
            if p < 0 || p >= d {
                p = match mode {
                    "constant" => {
                        off = None;
                        break;
                    }
                    _ if d == 0 => {
                        return Err(node.error(format!("{mode} padding of an empty axis")));
                    }
                    "edge" => p.clamp(0, d - 1),
                    "reflect" if d == 1 => 0,
                    "reflect" => {
                        let period = 2 * (d - 1);
                        let q = p.rem_euclid(period);
                        if q < d {
                            q
                        } else {
                            period - q
                        }
                    }
                    "wrap" => p.rem_euclid(d),
                    other => return Err(node.error(format!("mode '{other}' unknown"))),
                };
            }
            off = off.map(|o| o + p as usize * src[a]);
        }
        idx.push(off);
        for a in (0..r).rev() {
            ctr[a] += 1;
            if ctr[a] < shape[a] {
                break;
            }
            ctr[a] = 0;
        }
    }
    let value = opt_input(inputs, 2);
    let data = map_data!(&x.data, v => {
        let fill = match value {
            Some(c) if c.dtype() == x.dtype() && c.len() == 1 => c.data.clone(),
            _ => TensorData::zeros(x.dtype(), 1),
        };
        let fill_v = fill_value(&fill, v);
        idx.iter().map(|o| o.map_or(fill_v, |i| v[i])).collect()
    });
    Ok(vec![Tensor { shape, data }])
}

/// The single element of `fill` as the element type of `_like` (same variant by construction).
fn fill_value<T: Copy + 'static>(fill: &TensorData, _like: &[T]) -> T {
    crate::with_data!(fill, v => {
        let any: &dyn std::any::Any = &v[0];
        *any.downcast_ref::<T>().expect("fill has the tensor's type")
    })
}

fn trilu(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, InterpError> {
    let x = input(node, inputs, 0)?;
    if x.rank() < 2 {
        return Err(node.error(format!("needs rank ≥ 2, got {:?}", x.shape)));
    }
    let k = opt_input(inputs, 1).map_or(0, |t| t.to_i64_vec().first().copied().unwrap_or(0));
    let upper = node.attrs.int_or("upper", 1)? != 0;
    let (rows, cols) = (x.shape[x.rank() - 2], x.shape[x.rank() - 1]);
    let zero = TensorData::zeros(x.dtype(), 1);
    let data = map_data!(&x.data, v => {
        let z = fill_value(&zero, v);
        v.iter()
            .enumerate()
            .map(|(i, &e)| {
                let (row, col) = (((i / cols) % rows) as i64, (i % cols) as i64);
                let keep = if upper { col - row >= k } else { col - row <= k };
                if keep { e } else { z }
            })
            .collect()
    });
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data,
    }])
}
