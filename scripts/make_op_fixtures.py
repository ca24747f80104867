#!/usr/bin/env python3
"""Op-level fixtures for the s6-run interpreter: small one-op ONNX graphs with edge cases
(broadcasting, negative axes and indices, clamped and empty slices, empty dims, fp16), run by
onnxruntime, saved as fixtures/ops/<case>/{model.onnx, inputs/*.npy, expected/*.npy}.

Run: /path/to/python scripts/make_op_fixtures.py   (needs numpy, onnx, onnxruntime)
"""
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ops")
rng = np.random.default_rng(20261121)

NP2ONNX = {
    np.dtype("float32"): TensorProto.FLOAT,
    np.dtype("float16"): TensorProto.FLOAT16,
    np.dtype("float64"): TensorProto.DOUBLE,
    np.dtype("int64"): TensorProto.INT64,
    np.dtype("int32"): TensorProto.INT32,
    np.dtype("bool"): TensorProto.BOOL,
}


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def case(name, op, inputs, attrs=None, n_out=1, consts=None, opset=17, in_names=None):
    """One node `op` reading graph inputs (numpy arrays; None = omitted optional input)
    and initializers `consts` (name -> array), producing `n_out` outputs."""
    attrs = attrs or {}
    consts = consts or {}
    in_names = in_names or [f"x{i}" for i in range(len(inputs))]
    node_inputs, graph_inputs, feeds = [], [], {}
    for nm, arr in zip(in_names, inputs):
        if arr is None:
            node_inputs.append("")
            continue
        node_inputs.append(nm)
        if nm in consts:
            continue
        graph_inputs.append(helper.make_tensor_value_info(nm, NP2ONNX[arr.dtype], list(arr.shape)))
        feeds[nm] = arr
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, node_inputs, outs, name=f"{name}_node", **attrs)
    graph = helper.make_graph(
        [node], name, graph_inputs,
        [helper.make_empty_tensor_value_info(o) for o in outs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    # IR 8 covers opsets up to 18; later opsets need a later IR.
    model.ir_version = 8 if opset <= 18 else (9 if opset <= 20 else 10)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    results = sess.run(None, feeds)
    d = os.path.join(ROOT, name)
    os.makedirs(os.path.join(d, "inputs"))
    os.makedirs(os.path.join(d, "expected"))
    onnx.save(model, os.path.join(d, "model.onnx"))
    for k, v in feeds.items():
        np.save(os.path.join(d, "inputs", f"{k}.npy"), v)
    for o, v in zip(outs, results):
        np.save(os.path.join(d, "expected", f"{o}.npy"), np.array(v, order="C"))


def i64(*v):
    return np.array(v, dtype=np.int64)


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)

    # ---- elementwise, broadcasting ----
    case("add_bcast", "Add", [f32(2, 3, 4), f32(3, 1)])
    case("mul_scalar", "Mul", [f32(1), f32(2, 3)])
    case("sub_rank0", "Sub", [np.array(1.5, np.float32), f32(4)])
    case("div_int_neg", "Div", [i64(7, -7, 9, -9).reshape(2, 2), i64(2, -4)])
    case("pow_int_exponent", "Pow", [f32(3, 4, lo=0.1), np.array(2, np.int64)], opset=17)
    case("pow_half", "Pow", [f32(5, lo=0.1), np.array([0.5, 3.0, -1.0, 1.7, 0.0], np.float32)])
    case("where_bcast", "Where",
         [rng.uniform(size=(2, 1, 4)) > 0.5, f32(3, 1), np.array(-7.0, np.float32)])
    case("greater_bcast", "Greater", [f32(2, 3), f32(3)])
    case("equal_int", "Equal", [i64(1, 2, 3), i64(2)])
    case("max_variadic", "Max", [f32(3), f32(2, 3), f32(1, 1)])
    case("add_empty", "Add", [np.zeros((0, 3), np.float32), f32(3)])
    wide = np.array([-40, -20, -5, -1e-3, 0, 1e-3, 0.7, 5, 19.9, 20.1, 40], np.float32)
    for op in ["Softplus", "Sigmoid", "Exp", "Neg", "Tanh"]:
        case(f"{op.lower()}_wide", op, [wide])
    pos = np.array([1e-6, 0.01, 0.5, 1, 2, 1e3, 3e5], np.float32)
    for op in ["Log", "Sqrt", "Reciprocal"]:
        case(f"{op.lower()}_pos", op, [pos])
    case("cast_f32_i64", "Cast", [np.array([-2.7, -0.5, 0.5, 2.7, 100.2], np.float32)],
         {"to": TensorProto.INT64})
    case("cast_f32_f16", "Cast", [f32(7, lo=-70000, hi=70000)], {"to": TensorProto.FLOAT16})
    case("cast_i64_bool", "Cast", [i64(0, 3, -1)], {"to": TensorProto.BOOL})

    # ---- fp16 ----
    h = lambda *s: f32(*s).astype(np.float16)
    case("add_f16_bcast", "Add", [h(2, 3), h(3)])
    case("mul_f16", "Mul", [h(4, 5), h(4, 1)])
    case("softplus_f16", "Softplus", [wide.astype(np.float16)])
    case("matmul_f16", "MatMul", [h(2, 3, 8), h(8, 5)])
    case("reducemean_f16", "ReduceMean", [h(2, 6)], {"axes": [-1], "keepdims": 1})
    case("conv_f16", "Conv", [h(1, 4, 9), h(4, 1, 3), h(4)],
         {"group": 4, "pads": [2, 2], "kernel_shape": [3]})

    # ---- shapes ----
    x = f32(3, 4, 5)
    case("slice_neg", "Slice", [x, i64(-1, -100), i64(-4, 100), i64(-2, 0), i64(-1, 2)],
         in_names=["x", "starts", "ends", "axes", "steps"])
    case("slice_clamped", "Slice", [x, i64(1, -7), i64(2**62, 3)], in_names=["x", "s", "e"])
    case("slice_empty", "Slice", [x, i64(3), i64(1), i64(2)], in_names=["x", "s", "e", "a"])
    case("slice_step_neg_full", "Slice", [x, i64(2**62), i64(-2**62), i64(1), i64(-1)],
         in_names=["x", "s", "e", "a", "st"])
    case("gather_neg", "Gather", [x, i64(-1, 0, -4, 2).reshape(2, 2)], {"axis": 1})
    case("gather_scalar_idx", "Gather", [x, np.array(-1, np.int64)], {"axis": -1})
    case("gather_axis0_empty", "Gather", [x, np.zeros((0,), np.int64)], {"axis": 0})
    case("split_sizes", "Split", [f32(2, 7), i64(3, 0, 4)], {"axis": -1}, n_out=3)
    case("split_uneven_18", "Split", [f32(7, 2)], {"axis": 0, "num_outputs": 3}, n_out=3, opset=18)
    case("split_equal", "Split", [f32(2, 6)], {"axis": 1}, n_out=2)
    case("concat_empty_neg", "Concat", [f32(2, 0), f32(2, 3), f32(2, 1)], {"axis": -1})
    case("concat_int", "Concat", [i64(1, 2), i64(3)], {"axis": 0})
    case("unsqueeze_neg", "Unsqueeze", [f32(3, 4), i64(-1, 0)])
    case("squeeze_axes", "Squeeze", [f32(1, 3, 1, 2), i64(-2)])
    case("squeeze_all", "Squeeze", [f32(1, 3, 1, 2)])
    case("transpose_perm", "Transpose", [x], {"perm": [2, 0, 1]})
    case("transpose_default", "Transpose", [f32(2, 3)])
    case("expand_bcast", "Expand", [f32(3, 1), i64(2, 1, 4)])
    case("expand_empty", "Expand", [f32(1, 3), i64(0, 3)])
    case("reshape_zero_infer", "Reshape", [x, i64(0, -1)])
    case("flatten_neg", "Flatten", [x], {"axis": -1})
    case("tile", "Tile", [f32(2, 3), i64(2, 1)])
    case("shape_slice", "Shape", [x], {"start": -2}, opset=17)
    case("constant_of_shape", "ConstantOfShape", [i64(2, 3)],
         {"value": numpy_helper.from_array(np.array([7], np.int64))})
    case("range_neg_step", "Range", [np.array(10, np.int64), np.array(1, np.int64),
                                     np.array(-3, np.int64)])
    case("range_float", "Range", [np.array(0.5, np.float32), np.array(2.0, np.float32),
                                  np.array(0.4, np.float32)])

    case("pad_constant_neg", "Pad", [f32(2, 3), i64(1, -1, 0, 2), np.array(9.5, np.float32)])
    case("pad_axes_18", "Pad", [f32(2, 3, 4), i64(2, 1, 0, 3), None, i64(-1, 0)], opset=18)
    case("pad_edge", "Pad", [f32(2, 3), i64(0, 2, 1, 1)], {"mode": "edge"})
    case("pad_reflect", "Pad", [f32(2, 4), i64(1, 3, 1, 2)], {"mode": "reflect"})
    case("trilu_lower_k", "Trilu", [f32(2, 4, 5), np.array(1, np.int64)], {"upper": 0})
    case("trilu_upper_neg_k", "Trilu", [f32(4, 3), np.array(-1, np.int64)])
    case("clip_inputs", "Clip", [f32(10), np.array(-0.5, np.float32), np.array(1.0, np.float32)])
    case("mod_int_python", "Mod", [i64(7, -7, 7, -7), i64(3, 3, -3, -3)])
    case("mod_fmod", "Mod", [f32(6, lo=-5, hi=5), np.array([1.5, -2, 3, 0.7, -1, 2], np.float32)],
         {"fmod": 1})
    case("not_bool", "Not", [rng.uniform(size=(3, 2)) > 0.5])

    # ---- reductions ----
    case("reducemean_17_attr", "ReduceMean", [x], {"axes": [-1, 0], "keepdims": 0})
    case("reducemean_18_input", "ReduceMean", [x, i64(1)], {"keepdims": 1}, opset=18)
    case("reducemean_all", "ReduceMean", [x], {"keepdims": 0})
    case("reducesum_empty_axis", "ReduceSum", [np.zeros((2, 0, 3), np.float32), i64(1)],
         {"keepdims": 0})
    case("reducemax", "ReduceMax", [x], {"axes": [1], "keepdims": 1})
    case("softmax_neg_axis", "Softmax", [x], {"axis": -2})
    case("cumsum_neg_axis", "CumSum", [x, np.array(-1, np.int64)])
    case("cumsum_excl_rev", "CumSum", [x, np.array(1, np.int32)], {"exclusive": 1, "reverse": 1})
    case("cumsum_int", "CumSum", [i64(1, 2, 3, 4).reshape(2, 2), np.array(0, np.int64)])

    # ---- matmul, gemm, einsum ----
    case("matmul_batch_bcast", "MatMul", [f32(2, 1, 3, 4), f32(5, 4, 2)])
    case("matmul_vec_left", "MatMul", [f32(4), f32(2, 4, 3)])
    case("matmul_vec_right", "MatMul", [f32(2, 3, 4), f32(4)])
    case("matmul_empty", "MatMul", [f32(0, 4), f32(4, 2)])
    case("matmul_big", "MatMul", [f32(33, 70), f32(70, 45)])
    case("gemm_trans", "Gemm", [f32(4, 3), f32(5, 4), f32(5)],
         {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0})
    case("gemm_plain", "Gemm", [f32(2, 3), f32(3, 4)])
    case("einsum_mamba_dA", "Einsum", [f32(2, 5, 6), f32(6, 3)], {"equation": "bld,dn->bldn"})
    case("einsum_mamba_dBu", "Einsum", [f32(2, 5, 6), f32(2, 5, 3), f32(2, 5, 6)],
         {"equation": "bld,bln,bld->bldn"})
    case("einsum_mamba_y", "Einsum", [f32(2, 6, 3), f32(2, 3)], {"equation": "bdn,bn->bd"})
    case("einsum_implicit", "Einsum", [f32(3, 4), f32(4, 2)], {"equation": "ij,jk"})
    case("einsum_ellipsis", "Einsum", [f32(2, 3, 4), f32(2, 4, 5)],
         {"equation": "...ij,...jk->...ik"})
    case("einsum_diag", "Einsum", [f32(4, 4)], {"equation": "ii->i"})
    case("einsum_trace", "Einsum", [f32(4, 4)], {"equation": "ii"})
    case("einsum_sum_all", "Einsum", [f32(3, 4)], {"equation": "ij->"})

    # ---- conv ----
    case("conv_depthwise_causal", "Conv", [f32(2, 8, 10), f32(8, 1, 4), f32(8)],
         {"group": 8, "pads": [3, 3], "kernel_shape": [4], "strides": [1], "dilations": [1]})
    case("conv_1d_dense", "Conv", [f32(1, 3, 9), f32(4, 3, 2)], {"pads": [1, 0]})
    case("conv_2d_grouped_same", "Conv", [f32(1, 4, 7, 6), f32(6, 2, 3, 2)],
         {"group": 2, "auto_pad": "SAME_UPPER", "strides": [2, 1]})
    case("conv_2d_dilated", "Conv", [f32(2, 2, 6, 7), f32(3, 2, 2, 3), f32(3)],
         {"pads": [1, 0, 0, 2], "strides": [1, 2], "dilations": [2, 1]})

    # ---- vision-Mamba and common LM ops (appended last: earlier cases keep their random draws) ----
    case("layernorm_axis_neg2", "LayerNormalization", [f32(2, 3, 4, 5), f32(4, 5), f32(4, 5)],
         {"axis": -2, "epsilon": 1e-3}, n_out=3)
    case("layernorm_no_bias", "LayerNormalization", [f32(3, 7), f32(7)])
    case("layernorm_f16", "LayerNormalization", [h(2, 6), h(6), h(6)])
    case("rmsnorm_23", "RMSNormalization", [f32(2, 3, 8), f32(8)], {"epsilon": 1e-4}, opset=23)
    case("rmsnorm_23_axis1", "RMSNormalization", [f32(2, 3, 4), f32(3, 4)], {"axis": 1}, opset=23)
    case("groupnorm_21", "GroupNormalization", [f32(2, 6, 3, 2), f32(6), f32(6)],
         {"num_groups": 3, "epsilon": 1e-4}, opset=21)
    case("instancenorm", "InstanceNormalization", [f32(2, 3, 4, 2), f32(3), f32(3)])
    case("batchnorm_infer", "BatchNormalization",
         [f32(2, 3, 4), f32(3), f32(3), f32(3), f32(3, lo=0.1, hi=2.0)], {"epsilon": 1e-3})
    for approx in ("none", "tanh"):
        case(f"gelu_{approx}", "Gelu", [f32(23, lo=-6, hi=6)], {"approximate": approx}, opset=20)
    case("erf_wide", "Erf", [np.array([-5, -2, -0.5, -1e-3, 0, 1e-3, 0.3, 1, 3, 6], np.float32)])
    case("hardswish", "HardSwish", [f32(17, lo=-5, hi=5)])
    case("hardsigmoid_attrs", "HardSigmoid", [f32(11, lo=-5, hi=5)], {"alpha": 0.3, "beta": 0.4})
    case("leakyrelu", "LeakyRelu", [f32(9)], {"alpha": 0.1})
    case("elu", "Elu", [f32(9)], {"alpha": 0.7})
    case("mish_18", "Mish", [f32(9, lo=-5, hi=5)], opset=18)
    case("gelu_f16", "Gelu", [h(9)], opset=20)
    empty = np.zeros((0,), np.float32)
    img = f32(1, 2, 3, 4)
    case("resize_nearest_asym_floor", "Resize",
         [img, empty, np.array([1, 1, 2, 2], np.float32)],
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})
    case("resize_nearest_half_pixel_ceil", "Resize",
         [img, empty, np.array([1, 1, 1.7, 0.6], np.float32)],
         {"mode": "nearest", "nearest_mode": "round_prefer_ceil"})
    case("resize_linear_sizes", "Resize", [img, None, None, i64(1, 2, 5, 7)], {"mode": "linear"})
    case("resize_linear_align_corners", "Resize",
         [img, empty, np.array([1, 1, 2, 1.5], np.float32)],
         {"mode": "linear", "coordinate_transformation_mode": "align_corners"})
    case("resize_linear_pytorch_down", "Resize",
         [f32(1, 1, 6, 5), None, None, i64(1, 1, 3, 1)],
         {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"})
    case("resize_axes_18", "Resize", [img, None, None, i64(6, 2)],
         {"mode": "linear", "axes": [-2, -1]}, opset=18)
    case("resize_half_pixel_symmetric_19", "Resize",
         [img, empty, np.array([1, 1, 1.5, 0.75], np.float32)],
         {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}, opset=19)
    case("conv_2d_depthwise", "Conv", [f32(2, 6, 5, 7), f32(6, 1, 3, 3), f32(6)],
         {"group": 6, "pads": [1, 1, 1, 1], "kernel_shape": [3, 3]})
    case("einsum_ss2d_xproj", "Einsum", [f32(2, 4, 6, 5), f32(4, 3, 6)],
         {"equation": "bkdl,kcd->bkcl"})
    case("einsum_grouped_dbu", "Einsum", [f32(2, 8, 5), f32(2, 8, 3, 5), f32(2, 8, 5)],
         {"equation": "bdl,bdnl,bdl->bdln"})
    case("einsum_readout_bdn", "Einsum", [f32(2, 8, 3), f32(2, 8, 3)], {"equation": "bdn,bdn->bd"})
    case("einsum_chain_contract", "Einsum", [f32(3, 4), f32(4, 5), f32(5, 2)],
         {"equation": "ij,jk,kl->il"})
    case("einsum_attention", "Einsum", [f32(2, 3, 4, 5), f32(2, 3, 6, 5)],
         {"equation": "bhqd,bhkd->bhqk"})
    case("einsum_ellipsis_bcast", "Einsum", [f32(2, 1, 3, 4), f32(5, 4)],
         {"equation": "...d,nd->...n"})
    case("einsum_repeated_out_order", "Einsum", [f32(3, 4, 2)], {"equation": "abc->cab"})
    case("trilu_batched_upper", "Trilu", [f32(2, 3, 5, 4)])
    case("onehot_neg_idx", "OneHot", [i64(0, -1, 2, 5, -7).reshape(5, 1), np.array(4, np.int64),
                                      np.array([0.5, 3.0], np.float32)], {"axis": 1}, opset=11)
    case("cumsum_f16_rev", "CumSum", [h(2, 5), np.array(1, np.int64)], {"reverse": 1})
    case("groupnorm_18_per_group", "GroupNormalization", [f32(2, 6, 3), f32(3), f32(3)],
         {"num_groups": 3}, opset=18)
    print(f"wrote {len(os.listdir(ROOT))} cases under {ROOT}")


if __name__ == "__main__":
    sys.exit(main())
