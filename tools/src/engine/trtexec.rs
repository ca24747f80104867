//! The `trtexec` command line equivalent to an s6-engine build, with the flags of the loaded
//! TensorRT version (plugin flags, precision, pool size syntax and typing changed over 8→11).

use super::profile::{trtexec_shapes, InputProfile};
use super::version::TrtVersion;
use std::path::Path;

/// How the engine's precision is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// fp32 everywhere TensorRT does not choose otherwise (weakly typed, no flags).
    Fp32,
    /// Weakly typed with the fp16 builder flag (TensorRT 8.x–10.x).
    Fp16,
    /// Weakly typed with the bf16 builder flag (TensorRT 9–10).
    Bf16,
    /// Strongly typed: the network's own types decide (TensorRT 10 on; the only way in 11).
    StronglyTyped,
}

/// What the build does, for the command line.
pub struct TrtexecPlan<'a> {
    pub version: TrtVersion,
    pub onnx: &'a Path,
    pub engine: &'a Path,
    pub plugin: Option<&'a Path>,
    pub profile: &'a [InputProfile],
    pub precision: Precision,
    pub workspace_mib: Option<u64>,
    pub timing_cache: Option<&'a Path>,
}

/// The argument vector (program name first).
pub fn trtexec_args(plan: &TrtexecPlan) -> Vec<String> {
    let v = plan.version;
    let mut a = vec![
        "trtexec".to_string(),
        format!("--onnx={}", plan.onnx.display()),
        format!("--saveEngine={}", plan.engine.display()),
    ];
    if let Some(p) = plan.plugin {
        // 10.x deprecated --plugins for --staticPlugins/--dynamicPlugins; the dynamic form goes
        // through IPluginRegistry::loadLibrary and getCreators, which libs6plugin exports.
        let flag = if v.has_split_plugin_flags() {
            "--dynamicPlugins"
        } else {
            "--plugins"
        };
        a.push(format!("{flag}={}", p.display()));
    }
    // Static inputs need no shape flags; trtexec refuses none, but they are noise.
    let dynamic: Vec<InputProfile> = plan
        .profile
        .iter()
        .filter(|p| !p.is_static())
        .cloned()
        .collect();
    if !dynamic.is_empty() {
        a.push(format!(
            "--minShapes={}",
            trtexec_shapes(&dynamic, |p| &p.min)
        ));
        a.push(format!(
            "--optShapes={}",
            trtexec_shapes(&dynamic, |p| &p.opt)
        ));
        a.push(format!(
            "--maxShapes={}",
            trtexec_shapes(&dynamic, |p| &p.max)
        ));
    }
    match plan.precision {
        Precision::Fp32 => {}
        Precision::Fp16 => a.push("--fp16".into()),
        Precision::Bf16 => a.push("--bf16".into()),
        Precision::StronglyTyped => a.push("--stronglyTyped".into()),
    }
    if let Some(mib) = plan.workspace_mib {
        // A bare number is MiB in every trtexec since 8.4; 10.x also takes suffixes.
        a.push(format!("--memPoolSize=workspace:{mib}"));
    }
    if let Some(c) = plan.timing_cache {
        a.push(format!("--timingCacheFile={}", c.display()));
    }
    a
}

/// Quotes one word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command line as one shell-ready string.
pub fn trtexec_command(plan: &TrtexecPlan) -> String {
    trtexec_args(plan)
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Vec<InputProfile> {
        vec![
            InputProfile {
                name: "input_ids".into(),
                min: vec![1, 1],
                opt: vec![1, 128],
                max: vec![2, 1024],
            },
            InputProfile {
                name: "fixed".into(),
                min: vec![4],
                opt: vec![4],
                max: vec![4],
            },
        ]
    }

    fn plan(v: TrtVersion, precision: Precision) -> String {
        let prof = profile();
        trtexec_command(&TrtexecPlan {
            version: v,
            onnx: Path::new("m.onnx"),
            engine: Path::new("out dir/m.engine"),
            plugin: Some(Path::new("/opt/libs6plugin.so")),
            profile: &prof,
            precision,
            workspace_mib: Some(1024),
            timing_cache: Some(Path::new("m.cache")),
        })
    }

    #[test]
    fn tensorrt_8_uses_plugins_and_fp16() {
        assert_eq!(
            plan(TrtVersion::new(8, 5, 2), Precision::Fp16),
            "trtexec --onnx=m.onnx '--saveEngine=out dir/m.engine' --plugins=/opt/libs6plugin.so \
             --minShapes=input_ids:1x1 --optShapes=input_ids:1x128 --maxShapes=input_ids:2x1024 \
             --fp16 --memPoolSize=workspace:1024 --timingCacheFile=m.cache"
        );
    }

    #[test]
    fn tensorrt_10_uses_dynamic_plugins() {
        let c = plan(TrtVersion::new(10, 3, 0), Precision::Bf16);
        assert!(c.contains(" --dynamicPlugins=/opt/libs6plugin.so "), "{c}");
        assert!(!c.contains("--plugins="), "{c}");
        assert!(c.contains(" --bf16 "), "{c}");
        let c = plan(TrtVersion::new(10, 14, 1), Precision::Fp32);
        assert!(
            !c.contains("--fp16") && !c.contains("--stronglyTyped"),
            "{c}"
        );
    }

    #[test]
    fn tensorrt_11_is_strongly_typed() {
        let c = plan(TrtVersion::new(11, 0, 0), Precision::StronglyTyped);
        assert!(c.contains(" --stronglyTyped "), "{c}");
        assert!(c.contains(" --dynamicPlugins="), "{c}");
        assert!(!c.contains("--fp16"), "{c}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("--x=1"), "--x=1");
        assert_eq!(shell_quote(""), "''");
    }
}
