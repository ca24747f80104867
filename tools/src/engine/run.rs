//! Running an engine on `.npy` inputs and writing `.npy` outputs, so that `s6-run --compare`
//! can cross-check TensorRT against the interpreter or onnxruntime.
//!
//! Buffers go through the CUDA driver API (cudarc, loaded at run time); TensorRT's runtime
//! API calls share the device's primary context, which cudarc retains.

use super::error::EngineError;
use super::glue::{Glue, IoTensor, Runner};
use super::libs::{self, BackendChoice, NvInfer};
use super::plugin;
use super::version::Target;
use cudarc::driver::{CudaContext, CudaStream, DevicePtr};
use s6_onnx::interp::{DataType, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an engine comes from and what runs it: the engine file, TensorRT, the plugin, the
/// GPU. Shared by `s6-engine run` and `s6-engine generate`.
#[derive(Clone, Debug)]
pub struct EngineSource {
    pub engine: PathBuf,
    pub plugin: Option<PathBuf>,
    pub trt_lib_dir: Option<PathBuf>,
    /// A specific runtime library (e.g. libnvinfer_lean.so.10) instead of the search.
    pub nvinfer: Option<PathBuf>,
    pub backend: BackendChoice,
    pub device: usize,
}

/// Everything `s6-engine run` takes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub source: EngineSource,
    pub inputs: Vec<(String, PathBuf)>,
    pub out_dir: PathBuf,
}

/// A deserialized engine with its execution context, on a stream of the chosen device.
/// Fields drop in order: the runner before the CUDA context, the libraries last.
pub struct Opened {
    pub runner: Runner,
    pub stream: Arc<CudaStream>,
    pub ctx: Arc<CudaContext>,
    pub target: Target,
    _plugin_lib: Option<libs::Loaded>,
    _nvinfer: NvInfer,
}

/// TensorRT and the plugin loaded, the engine file read: what comes before the GPU.
pub struct Loaded {
    glue: Glue,
    bytes: Vec<u8>,
    device: usize,
    plugin_lib: Option<libs::Loaded>,
    nvinfer: NvInfer,
}

impl EngineSource {
    /// Loads TensorRT and the plugin and reads the engine file.
    pub fn load(&self) -> Result<Loaded, EngineError> {
        let (nvinfer, _) = libs::open(
            self.backend,
            self.nvinfer.as_deref(),
            self.trt_lib_dir.as_deref(),
        )?;
        let glue = Glue::get(nvinfer.backend, "run engines")?;
        glue.check_abi(&nvinfer.loaded.path, nvinfer.version)?;
        let plugin_path = self.plugin.clone().or_else(plugin::default_plugin_path);
        let plugin_lib = match &plugin_path {
            Some(p) => plugin::register(glue, &nvinfer, p)?,
            None => {
                tracing::warn!("no libs6plugin.so given or found next to s6-engine; engines with S6Scan layers will not load");
                None
            }
        };
        let bytes = std::fs::read(&self.engine).map_err(|source| EngineError::Io {
            path: self.engine.clone(),
            source,
        })?;
        Ok(Loaded {
            glue,
            bytes,
            device: self.device,
            plugin_lib,
            nvinfer,
        })
    }

    /// [`EngineSource::load`], then [`Loaded::start`].
    pub fn open(&self) -> Result<Opened, EngineError> {
        self.load()?.start()
    }
}

impl Loaded {
    /// Takes the GPU and deserializes the engine.
    pub fn start(self) -> Result<Opened, EngineError> {
        // SAFETY: probing for libcuda only loads it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(EngineError::NoCuda);
        }
        let ctx = CudaContext::new(self.device).map_err(|e| EngineError::NoDevice {
            device: self.device,
            reason: e.to_string(),
        })?;
        ctx.bind_to_thread().map_err(cuda)?;
        let stream = ctx.new_stream().map_err(cuda)?;
        let create_runtime = libs::symbol(&self.nvinfer.loaded, "createInferRuntime_INTERNAL")?;
        // SAFETY: createInferRuntime_INTERNAL of a library whose major matches the headers; the
        // library stays loaded (in the returned `Opened`) past the runner.
        let runner = unsafe { Runner::new(self.glue, create_runtime, &self.bytes) }?;
        Ok(Opened {
            runner,
            stream,
            ctx,
            target: self.nvinfer.target(),
            _plugin_lib: self.plugin_lib,
            _nvinfer: self.nvinfer,
        })
    }
}

/// TensorRT `DataType` value → element type (None: not handled here, e.g. FP8, INT4).
pub fn trt_dtype(v: i32) -> Option<DataType> {
    Some(match v {
        0 => DataType::F32,
        1 => DataType::F16,
        2 => DataType::I8,
        3 => DataType::I32,
        4 => DataType::Bool,
        5 => DataType::U8,
        7 => DataType::BF16,
        8 => DataType::I64,
        _ => return None,
    })
}

/// The input tensor in the engine's dtype. int64 → int32 (TensorRT 8 turns ONNX int64 inputs
/// into int32) is checked for range; float ↔ float conversions are allowed.
pub fn to_engine_dtype(name: &str, t: &Tensor, want: DataType) -> Result<Tensor, EngineError> {
    let have = t.dtype();
    if have == want {
        return Ok(t.clone());
    }
    let ok = (have.is_float() && want.is_float())
        || matches!(
            (have, want),
            (DataType::I64, DataType::I32) | (DataType::I32, DataType::I64)
        );
    if !ok {
        return Err(EngineError::Tensor {
            tensor: name.into(),
            reason: format!("the .npy holds {have}, the engine wants {want}"),
        });
    }
    if have == DataType::I64 && want == DataType::I32 {
        if let Some(v) = t
            .to_i64_vec()
            .into_iter()
            .find(|v| i32::try_from(*v).is_err())
        {
            return Err(EngineError::Tensor {
                tensor: name.into(),
                reason: format!("value {v} does not fit the engine's int32"),
            });
        }
    }
    Ok(t.cast(want))
}

/// Output as written: half floats widened to float32 and int32 to int64 (both exact), so that
/// the files compare directly with onnxruntime's.
pub fn widen_output(t: Tensor) -> Tensor {
    match t.dtype() {
        DataType::F16 | DataType::BF16 => t.cast(DataType::F32),
        DataType::I32 => t.cast(DataType::I64),
        _ => t,
    }
}

/// Checks given input shapes against the engine's declared ones (-1 = any).
pub fn check_shape(io: &IoTensor, shape: &[usize]) -> Result<Vec<i64>, EngineError> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let fits =
        io.shape.len() == dims.len() && io.shape.iter().zip(&dims).all(|(&e, &d)| e < 0 || e == d);
    if !fits {
        return Err(EngineError::Tensor {
            tensor: io.name.clone(),
            reason: format!(
                "the .npy is {dims:?}, the engine takes {:?} (-1: any)",
                io.shape
            ),
        });
    }
    Ok(dims)
}

pub(crate) fn cuda(e: impl std::fmt::Display) -> EngineError {
    EngineError::Cuda(e.to_string())
}

/// Runs the engine once; returns the output files written.
pub fn run(opts: &RunOptions) -> Result<Vec<PathBuf>, EngineError> {
    let loaded = opts.source.load()?;
    let mut inputs = Vec::new();
    for (name, path) in &opts.inputs {
        let t = s6_onnx::npy::read(path).map_err(|e| EngineError::BadArg {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        inputs.push((name.clone(), t));
    }
    let mut opened = loaded.start()?;
    let stream = opened.stream.clone();
    let runner = &mut opened.runner;
    let io = runner.io();

    let mut buffers = Vec::new();
    for t in io.iter().filter(|t| t.is_input) {
        let (_, given) =
            inputs
                .iter()
                .find(|(n, _)| *n == t.name)
                .ok_or_else(|| EngineError::Tensor {
                    tensor: t.name.clone(),
                    reason: "engine input not given (--input NAME=FILE.npy)".into(),
                })?;
        let want = trt_dtype(t.dtype).ok_or_else(|| EngineError::Tensor {
            tensor: t.name.clone(),
            reason: format!("TensorRT data type {} not handled", t.dtype),
        })?;
        let dims = check_shape(t, &given.shape)?;
        let host = to_engine_dtype(&t.name, given, want)?.data.to_le_bytes();
        runner.set_input_shape(&t.name, &dims)?;
        let mut dev = stream.alloc_zeros::<u8>(host.len().max(1)).map_err(cuda)?;
        stream.memcpy_htod(&host, &mut dev).map_err(cuda)?;
        buffers.push((t.name.clone(), dev));
    }
    for (name, _) in &inputs {
        if !io.iter().any(|t| t.is_input && t.name == *name) {
            return Err(EngineError::Tensor {
                tensor: name.clone(),
                reason: "not an input of this engine".into(),
            });
        }
    }
    let mut outputs = Vec::new();
    for t in io.iter().filter(|t| !t.is_input) {
        let dtype = trt_dtype(t.dtype).ok_or_else(|| EngineError::Tensor {
            tensor: t.name.clone(),
            reason: format!("TensorRT data type {} not handled", t.dtype),
        })?;
        let shape = runner.shape(&t.name)?;
        let n: usize = shape.iter().map(|&d| d.max(0) as usize).product();
        let dev = stream
            .alloc_zeros::<u8>((n * dtype.size_bytes()).max(1))
            .map_err(cuda)?;
        outputs.push((t.name.clone(), dtype, shape, buffers.len()));
        buffers.push((t.name.clone(), dev));
    }
    for (name, dev) in &buffers {
        let (ptr, _sync) = dev.device_ptr(&stream);
        // SAFETY: `dev` is live device memory sized for the tensor, kept until after the
        // synchronize below.
        unsafe { runner.set_address(name, ptr as usize as *mut std::ffi::c_void) }?;
    }
    // SAFETY: every I/O address is set; the stream belongs to the current context.
    unsafe { runner.enqueue(stream.cu_stream() as *mut std::ffi::c_void) }?;
    stream.synchronize().map_err(cuda)?;

    std::fs::create_dir_all(&opts.out_dir).map_err(|source| EngineError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let mut written = Vec::new();
    // File names as s6-run writes them, so that `s6-run --compare` finds them.
    let names: Vec<&str> = outputs.iter().map(|o| o.0.as_str()).collect();
    let files = s6_onnx::npy::file_names_for(&names);
    for ((name, dtype, shape, idx), file) in outputs.into_iter().zip(files) {
        let bytes = stream.clone_dtoh(&buffers[idx].1).map_err(cuda)?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let data =
            s6_onnx::interp::TensorData::from_le_bytes(dtype, &bytes[..n * dtype.size_bytes()])
                .ok_or_else(|| EngineError::Tensor {
                    tensor: name.clone(),
                    reason: "output buffer has the wrong size".into(),
                })?;
        let t = Tensor::new(shape, data).map_err(|e| EngineError::Tensor {
            tensor: name.clone(),
            reason: e.to_string(),
        })?;
        let path = opts.out_dir.join(file);
        s6_onnx::npy::write(&path, &widen_output(t)).map_err(|e| EngineError::BadArg {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        written.push(path);
    }
    Ok(written)
}

/// `NAME=FILE.npy`.
pub fn parse_input(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => {
            Ok((n.to_string(), Path::new(p).to_path_buf()))
        }
        _ => Err(format!("{arg:?} is not NAME=FILE.npy")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_follow_tensorrt() {
        // nvinfer1::DataType values, fixed since TensorRT 8.
        assert_eq!(trt_dtype(0), Some(DataType::F32));
        assert_eq!(trt_dtype(1), Some(DataType::F16));
        assert_eq!(trt_dtype(3), Some(DataType::I32));
        assert_eq!(trt_dtype(7), Some(DataType::BF16));
        assert_eq!(trt_dtype(8), Some(DataType::I64));
        assert_eq!(trt_dtype(6), None);
    }

    #[test]
    fn input_conversion_and_checks() {
        let ids = Tensor::from_i64(vec![1, 3], vec![1, 2, 3]).unwrap();
        let t = to_engine_dtype("ids", &ids, DataType::I32).unwrap();
        assert_eq!(t.dtype(), DataType::I32);
        assert_eq!(t.to_i64_vec(), vec![1, 2, 3]);
        let big = Tensor::from_i64(vec![1], vec![1 << 40]).unwrap();
        assert!(to_engine_dtype("ids", &big, DataType::I32)
            .unwrap_err()
            .to_string()
            .contains("does not fit"));
        let x = Tensor::from_f32(vec![2], vec![0.5, -2.0]).unwrap();
        assert!(to_engine_dtype("x", &x, DataType::I32).is_err());
        let h = to_engine_dtype("x", &x, DataType::F16).unwrap();
        assert_eq!(widen_output(h).to_f32_vec(), vec![0.5, -2.0]);

        let io = IoTensor {
            name: "ids".into(),
            is_input: true,
            dtype: 8,
            shape: vec![-1, -1],
        };
        assert_eq!(check_shape(&io, &[2, 7]).unwrap(), vec![2, 7]);
        assert!(check_shape(&io, &[2, 7, 1]).is_err());
        let io = IoTensor {
            shape: vec![1, 16],
            ..io
        };
        assert!(check_shape(&io, &[1, 8])
            .unwrap_err()
            .to_string()
            .contains("[1, 16]"));
    }

    #[test]
    fn args_and_names() {
        assert_eq!(
            parse_input("input_ids=a=b.npy").unwrap(),
            ("input_ids".into(), PathBuf::from("a=b.npy"))
        );
        assert!(parse_input("x").is_err() && parse_input("=f").is_err());
    }
}
