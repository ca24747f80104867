//! `s6-engine generate`'s model: one call of an engine of a stateful graph, as the shared
//! generation loop ([`crate::generate::StepModel`]) drives it.
//!
//! Per call: the input shapes are set (L = prompt length at prefill, 1 at decode), the ids are
//! copied up, and TensorRT reads the states from one set of device buffers and writes the next
//! states into the other; the two sets are swapped after the call, so the states never leave
//! the GPU. Only the logits of each row's last position are copied back.

use super::binding::{last_rows, BindingPlan};
use super::error::EngineError;
use super::run::{cuda, to_engine_dtype, Opened};
use crate::generate::{GenerateError, StepModel};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use s6_onnx::interp::{DataType, Tensor, TensorData};
use std::ffi::c_void;
use std::sync::Arc;

/// Device memory that grows to the largest call seen and is reused after.
#[derive(Default)]
struct Grow(Option<CudaSlice<u8>>);

impl Grow {
    fn at_least(
        &mut self,
        stream: &Arc<CudaStream>,
        bytes: usize,
    ) -> Result<&mut CudaSlice<u8>, EngineError> {
        let bytes = bytes.max(1);
        if self.0.as_ref().is_none_or(|b| b.len() < bytes) {
            self.0 = None;
            self.0 = Some(stream.alloc_zeros::<u8>(bytes).map_err(cuda)?);
        }
        Ok(self.0.as_mut().expect("allocated above"))
    }
}

/// The states of every layer on the device: `cur` is read by the next call, `next` written.
pub struct DeviceStates {
    batch: usize,
    cur: Vec<CudaSlice<u8>>,
    next: Vec<CudaSlice<u8>>,
}

/// An engine of a stateful graph, ready to step.
pub struct EngineSession {
    // Buffers before the engine: they are freed while its context is alive.
    ids: Grow,
    logits: Grow,
    scratch: Vec<Grow>,
    host: Vec<u8>,
    plan: BindingPlan,
    engine: Opened,
}

impl EngineSession {
    /// Binds the engine's I/O (refusing an engine that is not of a stateful graph).
    pub fn new(engine: Opened) -> Result<EngineSession, EngineError> {
        let plan = BindingPlan::new(&engine.runner.io())?;
        Ok(EngineSession {
            ids: Grow::default(),
            logits: Grow::default(),
            scratch: plan.other_outputs.iter().map(|_| Grow::default()).collect(),
            host: Vec::new(),
            plan,
            engine,
        })
    }

    pub fn plan(&self) -> &BindingPlan {
        &self.plan
    }

    pub fn opened(&self) -> &Opened {
        &self.engine
    }

    fn set_shapes(&mut self, batch: usize, len: usize) -> Result<(), EngineError> {
        for (name, dims) in self.plan.input_shapes(batch, len)? {
            self.engine
                .runner
                .set_input_shape(name, &dims)
                .map_err(|e| match e {
                    EngineError::Tensor { tensor, reason } => EngineError::Tensor {
                        tensor,
                        reason: format!(
                            "{reason}: a call of {batch} rows × {len} tokens ({}); the prompt and the one-token decode steps must fit it: s6-engine build --stateful --max batch=B,sequence=L",
                            if len == 1 { "a decode step" } else { "the prompt" }
                        ),
                    },
                    other => other,
                })?;
        }
        Ok(())
    }

    fn output_len(&self, name: &str, dtype: DataType) -> Result<(Vec<i64>, usize), EngineError> {
        let shape = self.engine.runner.shape(name)?;
        if shape.iter().any(|&d| d < 0) {
            // A data-dependent size would need an output allocator; a stateful graph has none.
            return Err(EngineError::Tensor {
                tensor: name.into(),
                reason: format!("shape {shape:?} is not known before the call"),
            });
        }
        let n: usize = shape.iter().map(|&d| d as usize).product();
        Ok((shape, n * dtype.size_bytes()))
    }
}

fn ptr_of(buf: &CudaSlice<u8>, stream: &Arc<CudaStream>) -> *mut c_void {
    let (p, _sync) = buf.device_ptr(stream);
    p as usize as *mut c_void
}

impl StepModel for EngineSession {
    type States = DeviceStates;

    fn zero_states(&mut self, batch: usize) -> Result<DeviceStates, GenerateError> {
        let stream = self.engine.stream.clone();
        let set = || -> Result<Vec<CudaSlice<u8>>, EngineError> {
            self.plan
                .states
                .iter()
                .map(|s| {
                    stream
                        .alloc_zeros::<u8>(s.bytes(batch).max(1))
                        .map_err(cuda)
                })
                .collect()
        };
        Ok(DeviceStates {
            batch,
            cur: set()?,
            next: set()?,
        })
    }

    fn forward(
        &mut self,
        ids: &Tensor,
        mut states: DeviceStates,
    ) -> Result<(Vec<Vec<f32>>, DeviceStates), GenerateError> {
        let (batch, len) = match ids.shape[..] {
            [b, l] if b > 0 && l > 0 => (b, l),
            _ => {
                return Err(GenerateError::Prompt(format!(
                    "shape {:?}: need (batch, length) with both ≥ 1",
                    ids.shape
                )))
            }
        };
        if states.batch != batch {
            return Err(GenerateError::Prompt(format!(
                "states of {} rows given for {batch} rows of ids",
                states.batch
            )));
        }
        let stream = self.engine.stream.clone();
        self.set_shapes(batch, len)?;
        let host_ids = to_engine_dtype(&self.plan.ids, ids, self.plan.ids_dtype)?
            .data
            .to_le_bytes();
        let ids_buf = self.ids.at_least(&stream, host_ids.len())?;
        stream.memcpy_htod(&host_ids, ids_buf).map_err(cuda)?;

        let (lshape, lbytes) = self.output_len(&self.plan.logits, self.plan.logits_dtype)?;
        let [lb, ll, vocab] = lshape[..] else {
            return Err(EngineError::Tensor {
                tensor: self.plan.logits.clone(),
                reason: format!("shape {lshape:?} is not (batch, sequence, vocab)"),
            }
            .into());
        };
        let (lb, ll, vocab) = (
            lb.max(0) as usize,
            ll.max(0) as usize,
            vocab.max(0) as usize,
        );
        if lb != batch || ll == 0 || vocab == 0 {
            return Err(EngineError::Tensor {
                tensor: self.plan.logits.clone(),
                reason: format!("shape {lshape:?} for a call of {batch} rows × {len} tokens"),
            }
            .into());
        }
        let mut scratch_bytes = Vec::with_capacity(self.scratch.len());
        for (name, dtype) in &self.plan.other_outputs {
            scratch_bytes.push(self.output_len(name, *dtype)?.1);
        }
        self.logits.at_least(&stream, lbytes)?;
        for (g, &b) in self.scratch.iter_mut().zip(&scratch_bytes) {
            g.at_least(&stream, b)?;
        }

        let runner = &mut self.engine.runner;
        let mut bind = |name: &str, buf: &CudaSlice<u8>| {
            // SAFETY: `buf` is live device memory of at least the tensor's size for the shapes
            // set above, kept (in self or `states`) until the synchronize below.
            unsafe { runner.set_address(name, ptr_of(buf, &stream)) }
        };
        bind(&self.plan.ids, self.ids.0.as_ref().expect("allocated"))?;
        bind(
            &self.plan.logits,
            self.logits.0.as_ref().expect("allocated"),
        )?;
        for ((name, _), g) in self.plan.other_outputs.iter().zip(&self.scratch) {
            bind(name, g.0.as_ref().expect("allocated"))?;
        }
        for ((s, cur), next) in self.plan.states.iter().zip(&states.cur).zip(&states.next) {
            bind(&s.input, cur)?;
            bind(&s.output, next)?;
        }
        // SAFETY: every I/O address is set; the stream belongs to the current context.
        unsafe { runner.enqueue(stream.cu_stream() as *mut c_void) }?;

        let row_bytes = vocab * self.plan.logits_dtype.size_bytes();
        self.host.resize(batch * row_bytes, 0);
        let logits = self.logits.0.as_ref().expect("allocated");
        let rows = last_rows(batch, ll, vocab, self.plan.logits_dtype.size_bytes());
        for (dst, src) in self.host.chunks_mut(row_bytes).zip(rows) {
            stream.memcpy_dtoh(&logits.slice(src), dst).map_err(cuda)?;
        }
        stream.synchronize().map_err(cuda)?;
        std::mem::swap(&mut states.cur, &mut states.next);

        let data =
            TensorData::from_le_bytes(self.plan.logits_dtype, &self.host).ok_or_else(|| {
                EngineError::Tensor {
                    tensor: self.plan.logits.clone(),
                    reason: "logits buffer has the wrong size".into(),
                }
            })?;
        let all = Tensor::new(vec![batch, vocab], data)?.to_f32_vec();
        let rows = all.chunks(vocab).map(<[f32]>::to_vec).collect();
        Ok((rows, states))
    }
}
