//! The wgpu device and the plumbing every kernel shares: pipelines (compiled once per storage
//! type), buffers, one blocking submit-and-read-back.

use crate::error::WgpuError;
use s6_contract::DType;
use s6_onnx::interp::ConstKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Which WGSL kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Scan,
    /// S6ScanHeads (Mamba2).
    ScanHeads,
    MatMul,
    /// MatMul for fewer than 16 rows.
    MatMulRows,
}

impl Kernel {
    fn source(self) -> &'static str {
        match self {
            Kernel::Scan => include_str!("shaders/s6scan.wgsl"),
            Kernel::ScanHeads => include_str!("shaders/s6scan_heads.wgsl"),
            Kernel::MatMul => include_str!("shaders/matmul.wgsl"),
            Kernel::MatMulRows => include_str!("shaders/matmul_rows.wgsl"),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Kernel::Scan => "S6Scan",
            Kernel::ScanHeads => "S6ScanHeads",
            Kernel::MatMul => "MatMul",
            Kernel::MatMulRows => "MatMulRows",
        }
    }
}

/// Storage type of the activations inside a kernel (arithmetic is always f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Storage {
    F32,
    /// Needs the adapter's `SHADER_F16`.
    F16,
}

impl Storage {
    /// Bytes per activation element.
    pub(crate) fn elem_bytes(self) -> u64 {
        match self {
            Storage::F32 => 4,
            Storage::F16 => 2,
        }
    }
}

/// Full WGSL source of a kernel (`S6Scan`, `S6ScanHeads`, `MatMul`, `MatMulRows`) with f32 or f16 storage:
/// the `act` alias, then the kernel.
pub fn shader_source(kernel_name: &str, f16_storage: bool) -> Option<String> {
    let kernel = match kernel_name {
        "S6Scan" => Kernel::Scan,
        "S6ScanHeads" => Kernel::ScanHeads,
        "MatMul" => Kernel::MatMul,
        "MatMulRows" => Kernel::MatMulRows,
        _ => return None,
    };
    let storage = if f16_storage {
        Storage::F16
    } else {
        Storage::F32
    };
    Some(source(kernel, storage))
}

fn source(kernel: Kernel, storage: Storage) -> String {
    let prelude = match storage {
        Storage::F32 => "alias act = f32;\n",
        Storage::F16 => "enable f16;\nalias act = f16;\n",
    };
    format!("{prelude}{}", kernel.source())
}

/// How to open the device.
#[derive(Clone, Debug)]
pub struct ContextOptions {
    /// Use the adapter's `SHADER_F16` when it has it (f16 activations stay f16 on the GPU).
    /// Without it, f16 and bf16 activations are widened to f32 on upload and rounded back on
    /// read-back.
    pub shader_f16: bool,
    /// Most bytes of constant inputs (weights) kept on the device across calls; past it they
    /// are uploaded per call as before.
    pub const_cache_bytes: u64,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            shader_f16: true,
            const_cache_bytes: 8 << 30,
        }
    }
}

/// What a kept constant was uploaded as; a hit must match it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConstSig {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub storage: Storage,
}

struct ConstEntry {
    buffer: wgpu::Buffer,
    sig: ConstSig,
    bytes: u64,
}

/// Device copies of constant inputs, by session, then name.
#[derive(Default)]
struct ConstCache {
    by_session: HashMap<u64, HashMap<String, ConstEntry>>,
    total: u64,
    stats: ConstStats,
}

/// Constant inputs served from the device versus uploaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConstStats {
    /// Constant inputs uploaded (first use, changed signature, or past the byte budget).
    pub uploads: usize,
    /// Constant inputs bound from the device copy without an upload.
    pub hits: usize,
    /// Bytes kept on the device now.
    pub kept_bytes: u64,
}

/// An open wgpu device with the s6plugin kernels.
pub struct WgpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    native_f16: bool,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<(Kernel, Storage), Arc<wgpu::ComputePipeline>>>,
    consts: Mutex<ConstCache>,
    const_budget: u64,
    // One GPU job at a time: wgpu's error scopes belong to the device, so concurrent jobs
    // would catch each other's errors.
    job: Mutex<()>,
}

impl std::fmt::Debug for WgpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("native_f16", &self.native_f16)
            .finish()
    }
}

/// Picks the adapter: `WGPU_ADAPTER_NAME` (substring, case-insensitive) if set, else wgpu's
/// choice for `WGPU_POWER_PREF` (default high performance). `WGPU_BACKEND` limits the backends.
fn pick_adapter(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
) -> Result<wgpu::Adapter, WgpuError> {
    let no_adapter = |reason: String| WgpuError::NoAdapter {
        backends: format!("{backends:?}"),
        reason,
    };
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = want.to_lowercase();
        let adapters = instance.enumerate_adapters(backends);
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&want))
            .ok_or_else(|| {
                no_adapter(format!(
                    "WGPU_ADAPTER_NAME={want} matches none of the adapters {names:?}"
                ))
            });
    }
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env()
            .unwrap_or(wgpu::PowerPreference::HighPerformance),
        force_fallback_adapter: false,
        compatible_surface: None,
    };
    pollster::block_on(instance.request_adapter(&options)).map_err(|e| no_adapter(e.to_string()))
}

impl WgpuContext {
    /// Opens the default adapter (see [`ContextOptions`]). Fails with
    /// [`WgpuError::NoAdapter`] on a machine without a usable GPU driver.
    pub fn new() -> Result<Self, WgpuError> {
        Self::with_options(&ContextOptions::default())
    }

    pub fn with_options(options: &ContextOptions) -> Result<Self, WgpuError> {
        let desc = wgpu::InstanceDescriptor::from_env_or_default();
        let instance = wgpu::Instance::new(&desc);
        let adapter = pick_adapter(&instance, desc.backends)?;
        let info = adapter.get_info();
        let native_f16 =
            options.shader_f16 && adapter.features().contains(wgpu::Features::SHADER_F16);
        let required_features = if native_f16 {
            wgpu::Features::SHADER_F16
        } else {
            wgpu::Features::empty()
        };
        // All the adapter offers: large buffers matter more here than portability of limits.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("s6-wgpu"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| WgpuError::Device {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        // Every job runs inside an error scope; anything that still escapes (e.g. a lost
        // device between jobs) is logged instead of wgpu's default panic.
        device.on_uncaptured_error(Box::new(|e| {
            tracing::error!(error = %e, "wgpu error outside a job");
        }));
        tracing::info!(
            adapter = %info.name,
            backend = ?info.backend,
            device_type = ?info.device_type,
            native_f16,
            "wgpu device open"
        );
        Ok(WgpuContext {
            device,
            queue,
            info,
            native_f16,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            consts: Mutex::new(ConstCache::default()),
            const_budget: options.const_cache_bytes,
            job: Mutex::new(()),
        })
    }

    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "Apple M2".
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    /// "Vulkan", "Metal", ...
    pub fn backend_name(&self) -> String {
        format!("{:?}", self.info.backend)
    }

    /// True when f16 activations stay f16 on the GPU (adapter has `SHADER_F16`).
    pub fn native_f16(&self) -> bool {
        self.native_f16
    }

    /// Storage of activations of dtype `act`: f16 stays f16 where the adapter has
    /// `SHADER_F16`; everything else is f32 on the device.
    pub(crate) fn storage_for(&self, act: DType) -> Storage {
        if act == DType::F16 && self.native_f16() {
            Storage::F16
        } else {
            Storage::F32
        }
    }

    /// Constant inputs served from the device so far.
    pub fn const_stats(&self) -> ConstStats {
        self.consts.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    /// Drops the device copies kept for `session`'s constants.
    pub fn forget_session(&self, session: u64) {
        let mut cache = self.consts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.by_session.remove(&session) {
            let freed: u64 = m.values().map(|e| e.bytes).sum();
            cache.total -= freed;
            cache.stats.kept_bytes = cache.total;
        }
    }

    /// Keeps freshly uploaded constants within the budget (a later hit binds them).
    fn keep_consts(&self, fresh: Vec<(u64, String, ConstEntry)>) {
        let mut cache = self.consts.lock().unwrap_or_else(|e| e.into_inner());
        for (session, name, entry) in fresh {
            let old = cache
                .by_session
                .get_mut(&session)
                .and_then(|m| m.remove(&name))
                .map_or(0, |e| e.bytes);
            cache.total -= old;
            if cache.total + entry.bytes > self.const_budget {
                tracing::debug!(%name, bytes = entry.bytes, "constant past the cache budget, not kept");
                continue;
            }
            cache.total += entry.bytes;
            cache
                .by_session
                .entry(session)
                .or_default()
                .insert(name, entry);
        }
        cache.stats.kept_bytes = cache.total;
    }

    /// The kept buffer of a constant whose signature matches, counting the hit.
    fn kept_const(&self, key: &ConstKey, sig: &ConstSig) -> Option<wgpu::Buffer> {
        let mut cache = self.consts.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = cache
            .by_session
            .get(&key.session)
            .and_then(|m| m.get(key.name))
            .filter(|e| e.sig == *sig)
            .map(|e| e.buffer.clone())?;
        cache.stats.hits += 1;
        Some(buffer)
    }

    /// Largest buffer one kernel binding may see, in bytes.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        u64::from(self.limits.max_storage_buffer_binding_size).min(self.limits.max_buffer_size)
    }

    pub(crate) fn max_workgroups_per_dim(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// Refuses a buffer of `bytes` that the device cannot bind.
    pub(crate) fn check_binding(
        &self,
        op: &'static str,
        what: &str,
        bytes: u64,
    ) -> Result<(), WgpuError> {
        let max = self.max_binding_bytes();
        if bytes > max {
            return Err(WgpuError::Unsupported {
                op,
                reason: format!("{what} needs {bytes} bytes, the device binds at most {max}"),
            });
        }
        Ok(())
    }

    pub(crate) fn pipeline(
        &self,
        kernel: Kernel,
        storage: Storage,
    ) -> Result<Arc<wgpu::ComputePipeline>, WgpuError> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&(kernel, storage)) {
            return Ok(p.clone());
        }
        let _job = self.job.lock().unwrap_or_else(|e| e.into_inner());
        let scope = ErrorScope::push(&self.device);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.label()),
                source: wgpu::ShaderSource::Wgsl(source(kernel, storage).into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.label()),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        scope.pop(kernel.label())?;
        let pipeline = Arc::new(pipeline);
        cache.insert((kernel, storage), pipeline.clone());
        Ok(pipeline)
    }

    /// Runs `pipeline` once over `groups` workgroups with `bindings` as group 0 (binding i =
    /// `bindings[i]`); returns the contents of the outputs marked `read`, in order. Every GPU
    /// object is made inside one error scope, so that any wgpu error becomes this call's `Err`.
    pub(crate) fn run(
        &self,
        op: &'static str,
        pipeline: &wgpu::ComputePipeline,
        bindings: &[Binding],
        groups: [u32; 3],
    ) -> Result<Vec<Vec<u8>>, WgpuError> {
        let _job = self.job.lock().unwrap_or_else(|e| e.into_inner());
        let scope = ErrorScope::push(&self.device);
        let mut fresh = Vec::new();
        let buffers: Vec<wgpu::Buffer> = bindings
            .iter()
            .map(|b| match b {
                Binding::Const { key, sig, data } => {
                    self.kept_const(key, sig).unwrap_or_else(|| {
                        let contents = data();
                        let buffer = self.buffer(op, &Binding::Input(&contents));
                        self.consts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .stats
                            .uploads += 1;
                        let entry = ConstEntry {
                            buffer: buffer.clone(),
                            sig: sig.clone(),
                            bytes: contents.len() as u64,
                        };
                        fresh.push((key.session, key.name.to_string(), entry));
                        buffer
                    })
                }
                _ => self.buffer(op, b),
            })
            .collect();
        let read: Vec<(&wgpu::Buffer, u64)> = bindings
            .iter()
            .zip(&buffers)
            .filter_map(|(b, buf)| match b {
                Binding::Output { bytes, read: true } => Some((buf, *bytes)),
                _ => None,
            })
            .collect();
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(op),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let staging: Vec<wgpu::Buffer> = read
            .iter()
            .map(|(_, len)| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back"),
                    size: padded(*len),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(op) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(op),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        for ((src, len), dst) in read.iter().zip(&staging) {
            encoder.copy_buffer_to_buffer(src, 0, dst, 0, padded(*len));
        }
        self.queue.submit([encoder.finish()]);

        let (tx, rx) = std::sync::mpsc::channel();
        for (i, dst) in staging.iter().enumerate() {
            let tx = tx.clone();
            dst.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        let gpu_err = |reason: String| WgpuError::Gpu { op, reason };
        self.device
            .poll(wgpu::PollType::Wait)
            .map_err(|e| gpu_err(e.to_string()))?;
        scope.pop(op)?;
        // Only buffers of a job without errors are kept: a failed upload must not be served.
        self.keep_consts(fresh);
        for (i, r) in rx.iter() {
            r.map_err(|e| gpu_err(format!("mapping read-back buffer {i}: {e}")))?;
        }
        let out = read
            .iter()
            .zip(&staging)
            .map(|((_, len), dst)| {
                let bytes = dst.slice(..).get_mapped_range()[..*len as usize].to_vec();
                dst.unmap();
                bytes
            })
            .collect();
        Ok(out)
    }
}

/// One binding of a kernel run.
pub(crate) enum Binding<'a> {
    Uniform(&'a [u8]),
    /// Read-only storage.
    Input(&'a [u8]),
    /// Read-only storage of a constant input: the device copy kept under `key` when its
    /// signature matches `sig`, else `data()` uploaded (and kept, within the budget).
    Const {
        key: ConstKey<'a>,
        sig: ConstSig,
        data: &'a dyn Fn() -> Vec<u8>,
    },
    /// Writable storage of `bytes`, read back after the run when `read`.
    Output {
        bytes: u64,
        read: bool,
    },
}

impl WgpuContext {
    fn buffer(&self, op: &str, b: &Binding) -> wgpu::Buffer {
        let init = |contents: &[u8], usage| {
            // Empty bindings are invalid: at least one word.
            let pad = [0u8; 4];
            let contents = if contents.is_empty() {
                &pad[..]
            } else {
                contents
            };
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(op),
                    contents,
                    usage,
                })
        };
        match b {
            Binding::Uniform(c) => init(c, wgpu::BufferUsages::UNIFORM),
            Binding::Input(c) => init(c, wgpu::BufferUsages::STORAGE),
            Binding::Const { data, .. } => init(&data(), wgpu::BufferUsages::STORAGE),
            Binding::Output { bytes, .. } => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(op),
                size: padded(*bytes),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
        }
    }
}

fn padded(bytes: u64) -> u64 {
    bytes.max(4).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
}

/// wgpu reports validation and memory errors asynchronously; a scope turns them into a
/// `Result` of the operation that caused them instead of a panic.
struct ErrorScope<'a> {
    device: &'a wgpu::Device,
}

const SCOPES: [wgpu::ErrorFilter; 3] = [
    wgpu::ErrorFilter::Validation,
    wgpu::ErrorFilter::OutOfMemory,
    wgpu::ErrorFilter::Internal,
];

impl<'a> ErrorScope<'a> {
    fn push(device: &'a wgpu::Device) -> Self {
        for f in SCOPES {
            device.push_error_scope(f);
        }
        ErrorScope { device }
    }

    fn pop(self, op: &'static str) -> Result<(), WgpuError> {
        let mut first = None;
        for _ in SCOPES {
            if let Some(e) = pollster::block_on(self.device.pop_error_scope()) {
                first.get_or_insert(e);
            }
        }
        std::mem::forget(self);
        match first {
            Some(e) => Err(WgpuError::Gpu {
                op,
                reason: e.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for ErrorScope<'_> {
    // An early return must not leave scopes pushed.
    fn drop(&mut self) {
        for _ in SCOPES {
            let _ = pollster::block_on(self.device.pop_error_scope());
        }
    }
}
