//! Execution: runs a parsed [`Plan`] on concrete inputs, offering each node to the backends
//! first, freeing each intermediate value after its last use.

use super::backend::{Backend, ConstKey};
use super::error::InterpError;
use super::graph::{Dim, IoInfo, Plan, NEVER_READ};
use super::tensor::Tensor;
use onnx_protobuf::ModelProto;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Source of [`Session::id`]s.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(0);

/// Where a run stands, for progress reports.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Nodes finished so far.
    pub done: usize,
    pub total: usize,
    /// The node just finished.
    pub node: &'a str,
    pub op_type: &'a str,
    /// Who ran it: a backend's name, or "cpu".
    pub backend: &'a str,
}

type ProgressFn = Box<dyn Fn(&Progress<'_>) + Send + Sync>;

/// A model ready to run.
pub struct Session {
    /// Scopes the [`ConstKey`]s handed to backends.
    id: u64,
    /// Slots that hold an initializer no node overwrites: the inputs backends may keep.
    const_slots: Vec<bool>,
    plan: Plan,
    backends: Vec<Box<dyn Backend>>,
    progress: Option<ProgressFn>,
}

impl Session {
    /// Parses `model` (decoding initializers, external data relative to `base_dir`) and checks
    /// that every op is supported.
    pub fn new(model: &ModelProto, base_dir: &Path) -> Result<Session, InterpError> {
        let plan = Plan::parse(model, base_dir)?;
        let mut const_slots: Vec<bool> = plan.constants.iter().map(Option::is_some).collect();
        for s in plan.nodes.iter().flat_map(|n| n.outputs.iter().flatten()) {
            const_slots[*s] = false;
        }
        Ok(Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            const_slots,
            plan,
            backends: Vec::new(),
            progress: None,
        })
    }

    /// Adds a backend; backends are asked in the order they were added, before the CPU.
    pub fn with_backend(mut self, backend: Box<dyn Backend>) -> Session {
        self.backends.push(backend);
        self
    }

    /// Calls `f` after every node.
    pub fn with_progress(mut self, f: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Session {
        self.progress = Some(Box::new(f));
        self
    }

    /// The graph inputs the caller must supply (initializer-backed inputs excluded).
    pub fn inputs(&self) -> impl Iterator<Item = &IoInfo> {
        self.plan.inputs.iter().map(|(i, _)| i)
    }

    pub fn outputs(&self) -> impl Iterator<Item = &IoInfo> {
        self.plan.outputs.iter().map(|(i, _)| i)
    }

    pub fn num_nodes(&self) -> usize {
        self.plan.nodes.len()
    }

    /// Runs the graph. Returns the graph outputs, in the model's order.
    pub fn run(
        &self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, InterpError> {
        let plan = &self.plan;
        let mut values: Vec<Option<Cow<'_, Tensor>>> = plan
            .constants
            .iter()
            .map(|c| c.as_ref().map(Cow::Borrowed))
            .collect();
        for (info, slot) in &plan.inputs {
            let t = inputs.get(&info.name).ok_or_else(|| InterpError::Input {
                name: info.name.clone(),
                reason: "not supplied".into(),
            })?;
            check_input(info, t)?;
            crate::data::checked_len(&t.shape, t.dtype().size_bytes()).map_err(|e| {
                InterpError::Input {
                    name: info.name.clone(),
                    reason: e.to_string(),
                }
            })?;
            values[*slot] = Some(Cow::Borrowed(t));
        }
        if let Some(extra) = inputs
            .keys()
            .find(|k| !plan.inputs.iter().any(|(i, _)| &i.name == *k))
        {
            let names: Vec<_> = plan.inputs.iter().map(|(i, _)| i.name.as_str()).collect();
            return Err(InterpError::Input {
                name: extra.clone(),
                reason: format!("the model has no such input (inputs: {names:?})"),
            });
        }

        let total = plan.nodes.len();
        let mut ran_on;
        for (idx, node) in plan.nodes.iter().enumerate() {
            let outs = {
                let args: Vec<Option<&Tensor>> = node
                    .inputs
                    .iter()
                    .map(|s| s.and_then(|s| values[s].as_deref()))
                    .collect();
                // No graph input may shadow an initializer and const_slots leaves out any a node
                // writes, so these keys stand for one tensor for this session's life.
                let consts: Vec<Option<ConstKey<'_>>> = node
                    .inputs
                    .iter()
                    .map(|s| {
                        s.filter(|&s| self.const_slots[s]).map(|s| ConstKey {
                            session: self.id,
                            name: &plan.slot_names[s],
                        })
                    })
                    .collect();
                let mut done = None;
                ran_on = "cpu";
                for b in &self.backends {
                    if let Some(o) =
                        b.try_run_consts(&node.proto, &args, &consts)
                            .map_err(|e| match e {
                                InterpError::Backend { .. } => e,
                                other => InterpError::Backend {
                                    backend: b.name().to_string(),
                                    node: node.name.clone(),
                                    reason: other.to_string(),
                                },
                            })?
                    {
                        done = Some(o);
                        ran_on = b.name();
                        break;
                    }
                }
                match done {
                    Some(o) => o,
                    None => {
                        (node.op)(node, &args).map_err(|e| e.in_node(&node.name, &node.op_type))?
                    }
                }
            };
            // Every value a node makes is a well-formed tensor within the cap, before the next
            // op loops over it.
            for t in &outs {
                let n = crate::data::checked_len(&t.shape, t.dtype().size_bytes())
                    .map_err(|e| node.error(format!("output of shape {:?}: {e}", t.shape)))?;
                if n != t.len() {
                    return Err(node.error(format!(
                        "output of shape {:?} has {} elements",
                        t.shape,
                        t.len()
                    )));
                }
            }
            if outs.len() < node.outputs.iter().flatten().count() {
                return Err(node.error(format!(
                    "produced {} outputs, the node has {}",
                    outs.len(),
                    node.outputs.len()
                )));
            }
            for (slot, t) in node.outputs.iter().zip(outs) {
                if let Some(s) = slot {
                    if plan.last_use[*s] != NEVER_READ {
                        values[*s] = Some(Cow::Owned(t));
                    }
                }
            }
            for s in node.inputs.iter().flatten() {
                if plan.last_use[*s] == idx {
                    values[*s] = None;
                }
            }
            tracing::trace!(node = %node.name, op = %node.op_type, "done");
            if let Some(p) = &self.progress {
                p(&Progress {
                    done: idx + 1,
                    total,
                    node: &node.name,
                    op_type: &node.op_type,
                    backend: ran_on,
                });
            }
        }

        let mut result = Vec::with_capacity(plan.outputs.len());
        for (info, slot) in &plan.outputs {
            let t = values[*slot].as_deref().ok_or_else(|| InterpError::Graph {
                reason: format!(
                    "output '{}' ({}) was never produced",
                    info.name, plan.slot_names[*slot]
                ),
            })?;
            result.push((info.name.clone(), t.clone()));
        }
        Ok(result)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for b in &self.backends {
            b.end_session(self.id);
        }
    }
}

/// Checks a supplied input against the declared dtype and fixed dimensions.
fn check_input(info: &IoInfo, t: &Tensor) -> Result<(), InterpError> {
    let err = |reason: String| InterpError::Input {
        name: info.name.clone(),
        reason,
    };
    if let Some(dt) = info.dtype {
        if dt != t.dtype() {
            return Err(err(format!("model wants {dt}, got {}", t.dtype())));
        }
    }
    if let Some(dims) = &info.dims {
        if dims.len() != t.rank() {
            return Err(err(format!(
                "model wants rank {} ({dims:?}), got shape {:?}",
                dims.len(),
                t.shape
            )));
        }
        for (ax, (d, &got)) in dims.iter().zip(&t.shape).enumerate() {
            if let Dim::Fixed(want) = d {
                if *want != got {
                    return Err(err(format!(
                        "axis {ax} must be {want}, got shape {:?}",
                        t.shape
                    )));
                }
            }
        }
    }
    Ok(())
}
