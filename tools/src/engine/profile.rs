//! `--min/--opt/--max` shape arguments → one optimisation profile (min, opt, max dims per input).
//!
//! The arguments name sizes, not inputs: `batch=1,sequence=128`. Each dynamic dimension of a
//! graph input is matched to a size by its symbolic name (`batch`, `sequence` and their usual
//! spellings, or any other `dim_param` given verbatim); an unnamed dynamic dimension falls back
//! on its axis (0 → batch, 1 → sequence), which is how Mamba exports lay out `input_ids`.

use super::error::EngineError;
use s6_onnx::proto::{tensor_shape_proto::dimension, type_proto, ModelProto};
use std::collections::BTreeMap;

/// The canonical size names.
pub const BATCH: &str = "batch";
pub const SEQUENCE: &str = "sequence";

const BATCH_ALIASES: [&str; 5] = ["batch", "batch_size", "batchsize", "b", "bs"];
const SEQUENCE_ALIASES: [&str; 8] = [
    "sequence",
    "sequence_length",
    "seq",
    "seq_len",
    "seqlen",
    "length",
    "l",
    "num_tokens",
];

/// One dimension of a graph input as the ONNX declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    /// Dynamic; the symbolic name if any (`dim_param`).
    Dynamic(Option<String>),
}

/// A graph input's name and declared dims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDecl {
    pub name: String,
    pub dims: Vec<Dim>,
}

/// Sizes from one of `--min`, `--opt`, `--max`: `name=value` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizeSpec(pub BTreeMap<String, i64>);

impl SizeSpec {
    /// Parses `batch=1,sequence=128` (keys `batch`/`sequence` and their aliases are folded to
    /// the canonical names; other keys are kept verbatim to match a `dim_param`).
    pub fn parse(flag: &'static str, arg: &str) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::ShapeSpec {
            flag,
            arg: arg.to_string(),
            reason,
        };
        let mut map = BTreeMap::new();
        for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                bad(format!(
                    "{part:?} is not NAME=SIZE (e.g. batch=1,sequence=128)"
                ))
            })?;
            let k = canonical(k.trim());
            let v: i64 = v
                .trim()
                .parse()
                .map_err(|_| bad(format!("size of {k:?} is not an integer")))?;
            if v < 1 {
                return Err(bad(format!("size of {k:?} must be at least 1, got {v}")));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(bad(format!("{k:?} given twice")));
            }
        }
        if map.is_empty() {
            return Err(bad("no sizes given (e.g. batch=1,sequence=128)".into()));
        }
        Ok(Self(map))
    }
}

/// Folds the usual spellings of batch and sequence to [`BATCH`] / [`SEQUENCE`].
fn canonical(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if BATCH_ALIASES.contains(&lower.as_str()) {
        BATCH.to_string()
    } else if SEQUENCE_ALIASES.contains(&lower.as_str()) {
        SEQUENCE.to_string()
    } else {
        name.to_string()
    }
}

/// The three shape arguments together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileArgs {
    pub min: SizeSpec,
    pub opt: SizeSpec,
    pub max: SizeSpec,
}

/// min/opt/max dims of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputProfile {
    pub name: String,
    pub min: Vec<i64>,
    pub opt: Vec<i64>,
    pub max: Vec<i64>,
}

impl InputProfile {
    /// True if min, opt and max agree (a static input).
    pub fn is_static(&self) -> bool {
        self.min == self.opt && self.opt == self.max
    }
}

/// The resolved profile, and the sizes given that no input used (worth a warning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub inputs: Vec<InputProfile>,
    pub unused: Vec<String>,
}

/// Which size a dynamic dimension takes: its `dim_param` if the arguments name it, else the
/// canonical name the `dim_param` folds to, else its axis.
fn size_key(param: Option<&str>, axis: usize, args: &ProfileArgs) -> Option<String> {
    if let Some(p) = param.filter(|p| !p.is_empty()) {
        if args.opt.0.contains_key(p) {
            return Some(p.to_string());
        }
        let c = canonical(p);
        if c == BATCH || c == SEQUENCE {
            return Some(c);
        }
    }
    match axis {
        0 => Some(BATCH.to_string()),
        1 => Some(SEQUENCE.to_string()),
        _ => None,
    }
}

/// Maps the arguments onto the graph inputs. Pure: the whole logic of `--min/--opt/--max`.
pub fn resolve(inputs: &[InputDecl], args: &ProfileArgs) -> Result<Profile, EngineError> {
    let mut used = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let (mut min, mut opt, mut max) = (vec![], vec![], vec![]);
        for (axis, dim) in input.dims.iter().enumerate() {
            let err = |reason: String| EngineError::Profile {
                input: input.name.clone(),
                axis,
                reason,
            };
            match dim {
                Dim::Fixed(v) => {
                    min.push(*v);
                    opt.push(*v);
                    max.push(*v);
                }
                Dim::Dynamic(param) => {
                    let shown = param.as_deref().unwrap_or("unnamed");
                    let key = size_key(param.as_deref(), axis, args).ok_or_else(|| {
                        err(format!(
                            "dynamic ({shown}) and neither batch nor sequence; give its size as {}=N in --min, --opt and --max",
                            param.as_deref().unwrap_or("its dim_param")
                        ))
                    })?;
                    let get = |spec: &SizeSpec, flag: &str| {
                        spec.0.get(&key).copied().ok_or_else(|| {
                            err(format!(
                                "dynamic ({shown}) is taken as {key:?}, but {flag} gives no {key}=N"
                            ))
                        })
                    };
                    let (lo, mid, hi) = (
                        get(&args.min, "--min")?,
                        get(&args.opt, "--opt")?,
                        get(&args.max, "--max")?,
                    );
                    if !(lo <= mid && mid <= hi) {
                        return Err(err(format!(
                            "{key}: need min ≤ opt ≤ max, got {lo}, {mid}, {hi}"
                        )));
                    }
                    used.insert(key);
                    min.push(lo);
                    opt.push(mid);
                    max.push(hi);
                }
            }
        }
        out.push(InputProfile {
            name: input.name.clone(),
            min,
            opt,
            max,
        });
    }
    let mut unused: Vec<String> = [&args.min, &args.opt, &args.max]
        .iter()
        .flat_map(|s| s.0.keys())
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    unused.sort();
    unused.dedup();
    Ok(Profile {
        inputs: out,
        unused,
    })
}

/// The graph's real inputs (initializers listed as inputs, as old exporters do, are skipped).
pub fn input_decls(model: &ModelProto) -> Vec<InputDecl> {
    let graph = &model.graph;
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|vi| !inits.contains(vi.name.as_str()))
        .map(|vi| {
            let dims = match &vi.type_.value {
                Some(type_proto::Value::TensorType(t)) => t
                    .shape
                    .dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(dimension::Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v),
                        Some(dimension::Value::DimParam(p)) if !p.is_empty() => {
                            Dim::Dynamic(Some(p.clone()))
                        }
                        _ => Dim::Dynamic(None),
                    })
                    .collect(),
                _ => vec![],
            };
            InputDecl {
                name: vi.name.clone(),
                dims,
            }
        })
        .collect()
}

/// `--min` and `--opt` of `s6-engine build --stateful` when not given: the one-token decode
/// step, which runs once per generated token, is what TensorRT tunes for.
pub const GENERATION_DEFAULT: &str = "batch=1,sequence=1";

/// What an engine of a stateful graph can generate with: its token-id input's ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationRange {
    pub ids: String,
    pub batch: (i64, i64),
    pub sequence: (i64, i64),
}

/// For a stateful graph (one with an input `conv_state.0`, from `onnx-patch --stateful`):
/// checks that the profile covers the one-token decode step (sequence from 1) and returns the
/// token-id input's ranges; `None` for any other graph.
pub fn generation_range(
    inputs: &[InputDecl],
    prof: &Profile,
) -> Result<Option<GenerationRange>, EngineError> {
    let state0 = s6_onnx::patch::stateful::conv_state_in(0);
    if !inputs.iter().any(|i| i.name == state0) {
        return Ok(None);
    }
    let is_state = |n: &str| n.starts_with("conv_state.") || n.starts_with("ssm_state.");
    let ids: Vec<&InputProfile> = prof.inputs.iter().filter(|p| !is_state(&p.name)).collect();
    let [ids] = ids.as_slice() else {
        return Err(EngineError::Profile {
            input: state0,
            axis: 0,
            reason: format!(
                "a stateful graph has one token-id input besides the states; this one has {:?}",
                ids.iter().map(|p| &p.name).collect::<Vec<_>>()
            ),
        });
    };
    if ids.min.len() != 2 {
        return Err(EngineError::Profile {
            input: ids.name.clone(),
            axis: 0,
            reason: format!("token ids of rank {}, not (batch, sequence)", ids.min.len()),
        });
    }
    if ids.min[1] != 1 {
        return Err(EngineError::Profile {
            input: ids.name.clone(),
            axis: 1,
            reason: format!(
                "a stateful graph decodes one token per call, so its profile must start at sequence=1 (--min gives {}; s6-engine build --stateful defaults --min and --opt to {GENERATION_DEFAULT})",
                ids.min[1]
            ),
        });
    }
    Ok(Some(GenerationRange {
        ids: ids.name.clone(),
        batch: (ids.min[0], ids.max[0]),
        sequence: (ids.min[1], ids.max[1]),
    }))
}

/// `name:1x128,other:1x16x4` — trtexec's shape syntax, for one of min/opt/max.
pub fn trtexec_shapes(profile: &[InputProfile], pick: fn(&InputProfile) -> &[i64]) -> String {
    profile
        .iter()
        .map(|p| {
            let dims: Vec<String> = pick(p).iter().map(i64::to_string).collect();
            format!("{}:{}", p.name, dims.join("x"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(min: &str, opt: &str, max: &str) -> ProfileArgs {
        ProfileArgs {
            min: SizeSpec::parse("--min", min).unwrap(),
            opt: SizeSpec::parse("--opt", opt).unwrap(),
            max: SizeSpec::parse("--max", max).unwrap(),
        }
    }

    fn decl(name: &str, dims: Vec<Dim>) -> InputDecl {
        InputDecl {
            name: name.into(),
            dims,
        }
    }

    #[test]
    fn parses_and_folds_aliases() {
        let s = SizeSpec::parse("--opt", "batch_size=2, seq_len=128,foo=3").unwrap();
        assert_eq!(s.0.get("batch"), Some(&2));
        assert_eq!(s.0.get("sequence"), Some(&128));
        assert_eq!(s.0.get("foo"), Some(&3));
        for bad in ["batch", "batch=0", "batch=x", "", "batch=1,b=2"] {
            assert!(SizeSpec::parse("--opt", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn maps_named_axis_and_fixed_dims() {
        let inputs = vec![
            // TorchScript export: named dynamic axes.
            decl(
                "input_ids",
                vec![
                    Dim::Dynamic(Some("batch_size".into())),
                    Dim::Dynamic(Some("sequence_length".into())),
                ],
            ),
            // dynamo export: s0/s1 names fall back on the axis.
            decl(
                "mask",
                vec![Dim::Dynamic(Some("s0".into())), Dim::Dynamic(None)],
            ),
            // a state input: batch dynamic, D and N fixed.
            decl(
                "state",
                vec![
                    Dim::Dynamic(Some("batch".into())),
                    Dim::Fixed(64),
                    Dim::Fixed(16),
                ],
            ),
        ];
        let p = resolve(
            &inputs,
            &args(
                "batch=1,sequence=1",
                "batch=2,sequence=64",
                "batch=4,sequence=1024",
            ),
        )
        .unwrap();
        assert_eq!(p.inputs[0].min, vec![1, 1]);
        assert_eq!(p.inputs[0].opt, vec![2, 64]);
        assert_eq!(p.inputs[0].max, vec![4, 1024]);
        assert_eq!(
            p.inputs[1],
            InputProfile {
                name: "mask".into(),
                min: vec![1, 1],
                opt: vec![2, 64],
                max: vec![4, 1024]
            }
        );
        assert_eq!(p.inputs[2].min, vec![1, 64, 16]);
        assert_eq!(p.inputs[2].max, vec![4, 64, 16]);
        assert!(p.unused.is_empty());
        assert_eq!(
            trtexec_shapes(&p.inputs, |i| &i.max),
            "input_ids:4x1024,mask:4x1024,state:4x64x16"
        );
    }

    #[test]
    fn verbatim_dim_param_wins_over_axis() {
        let inputs = vec![decl(
            "x",
            vec![
                Dim::Fixed(1),
                Dim::Fixed(8),
                Dim::Dynamic(Some("chunk".into())),
            ],
        )];
        let p = resolve(&inputs, &args("chunk=2", "chunk=4", "chunk=8")).unwrap();
        assert_eq!((p.inputs[0].min[2], p.inputs[0].max[2]), (2, 8));
        // Unnamed dynamic axis 2: no rule applies → error naming input and axis.
        let inputs = vec![decl(
            "x",
            vec![Dim::Fixed(1), Dim::Fixed(8), Dim::Dynamic(None)],
        )];
        let e = resolve(&inputs, &args("batch=1", "batch=1", "batch=1")).unwrap_err();
        assert!(
            matches!(e, EngineError::Profile { ref input, axis: 2, .. } if input == "x"),
            "{e}"
        );
    }

    #[test]
    fn reports_missing_bad_order_and_unused() {
        let inputs = vec![decl(
            "input_ids",
            vec![
                Dim::Dynamic(Some("batch".into())),
                Dim::Dynamic(Some("sequence".into())),
            ],
        )];
        let e = resolve(
            &inputs,
            &args("batch=1", "batch=1,sequence=8", "batch=1,sequence=8"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--min gives no sequence=N"), "{e}");
        let e = resolve(
            &inputs,
            &args(
                "batch=1,sequence=16",
                "batch=1,sequence=8",
                "batch=1,sequence=32",
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("min ≤ opt ≤ max"), "{e}");
        // A static-batch model given a batch size: resolved, batch reported unused.
        let inputs = vec![decl(
            "input_ids",
            vec![Dim::Fixed(1), Dim::Dynamic(Some("sequence".into()))],
        )];
        let p = resolve(
            &inputs,
            &args(
                "batch=1,sequence=1",
                "batch=1,sequence=8",
                "batch=1,sequence=9",
            ),
        )
        .unwrap();
        assert_eq!(p.inputs[0].max, vec![1, 9]);
        assert_eq!(p.unused, vec!["batch".to_string()]);
    }

    /// The stateful fixture's inputs as `onnx-patch --stateful` declares them.
    fn stateful_inputs() -> Vec<InputDecl> {
        let batch = || Dim::Dynamic(Some("batch".into()));
        let mut v = vec![decl(
            "input_ids",
            vec![batch(), Dim::Dynamic(Some("seq_len".into()))],
        )];
        for l in 0..2 {
            v.push(decl(
                &format!("conv_state.{l}"),
                vec![batch(), Dim::Fixed(64), Dim::Fixed(3)],
            ));
            v.push(decl(
                &format!("ssm_state.{l}"),
                vec![batch(), Dim::Fixed(64), Dim::Fixed(16)],
            ));
        }
        v
    }

    #[test]
    fn stateful_graphs_need_the_one_token_step() {
        let inputs = stateful_inputs();
        let d = GENERATION_DEFAULT;
        let p = resolve(&inputs, &args(d, d, "batch=4,sequence=1024")).unwrap();
        assert_eq!(p.inputs[1].min, vec![1, 64, 3]);
        assert_eq!(p.inputs[4].max, vec![4, 64, 16]);
        assert_eq!(
            generation_range(&inputs, &p).unwrap(),
            Some(GenerationRange {
                ids: "input_ids".into(),
                batch: (1, 4),
                sequence: (1, 1024)
            })
        );
        // A profile from sequence 8 cannot run the decode step.
        let p = resolve(
            &inputs,
            &args(
                "batch=1,sequence=8",
                "batch=1,sequence=8",
                "batch=1,sequence=64",
            ),
        )
        .unwrap();
        let e = generation_range(&inputs, &p).unwrap_err();
        assert!(
            matches!(e, EngineError::Profile { ref input, axis: 1, .. } if input == "input_ids"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("must start at sequence=1 (--min gives 8"),
            "{e}"
        );
        // Not a stateful graph: nothing to check.
        let plain = &inputs[..1];
        let p = resolve(
            plain,
            &args(
                "batch=1,sequence=8",
                "batch=1,sequence=8",
                "batch=1,sequence=8",
            ),
        )
        .unwrap();
        assert_eq!(generation_range(plain, &p).unwrap(), None);
    }
}
