//! TensorRT version numbers: decoding `getInferLibVersion()`, which product a library is
//! (TensorRT or TensorRT-RTX), and what each wants.

use std::fmt;

/// The TensorRT product s6-engine drives: each has its own libraries, headers and C++ ABI, so
/// s6-engine carries one C++ bridge per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// TensorRT (libnvinfer.so.N): 8.5 to 11.
    Trt,
    /// TensorRT-RTX (libtensorrt_rtx.so.1): builds engines without a GPU; its engines run on
    /// compute capability 7.5, 8.0, 8.6, 8.9 and 12.x only.
    Rtx,
}

impl Backend {
    /// The product's name, as in messages: "TensorRT", "TensorRT-RTX".
    pub fn product(self) -> &'static str {
        match self {
            Backend::Trt => "TensorRT",
            Backend::Rtx => "TensorRT-RTX",
        }
    }

    /// The `--backend` value: "trt", "rtx".
    pub fn tag(self) -> &'static str {
        match self {
            Backend::Trt => "trt",
            Backend::Rtx => "rtx",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.product())
    }
}

/// A loaded library: which product, which version. What a build may ask for depends on both
/// (TensorRT-RTX 1.x has TensorRT 10's API with 11's strong typing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub backend: Backend,
    pub version: TrtVersion,
}

impl Target {
    pub const fn trt(version: TrtVersion) -> Self {
        Self {
            backend: Backend::Trt,
            version,
        }
    }

    pub const fn rtx(version: TrtVersion) -> Self {
        Self {
            backend: Backend::Rtx,
            version,
        }
    }

    fn or_rtx(self, f: fn(TrtVersion) -> bool, rtx: bool) -> bool {
        match self.backend {
            Backend::Trt => f(self.version),
            Backend::Rtx => rtx,
        }
    }

    /// See [`TrtVersion::strongly_typed_only`]; TensorRT-RTX: always.
    pub fn strongly_typed_only(self) -> bool {
        self.or_rtx(TrtVersion::strongly_typed_only, true)
    }
    /// See [`TrtVersion::has_precision_flags`]; TensorRT-RTX: none.
    pub fn has_precision_flags(self) -> bool {
        self.or_rtx(TrtVersion::has_precision_flags, false)
    }
    /// See [`TrtVersion::has_bf16_flag`]; TensorRT-RTX: none.
    pub fn has_bf16_flag(self) -> bool {
        self.or_rtx(TrtVersion::has_bf16_flag, false)
    }
    /// See [`TrtVersion::has_strongly_typed`]; TensorRT-RTX: always.
    pub fn has_strongly_typed(self) -> bool {
        self.or_rtx(TrtVersion::has_strongly_typed, true)
    }
    /// See [`TrtVersion::has_load_library`]; TensorRT-RTX: yes.
    pub fn has_load_library(self) -> bool {
        self.or_rtx(TrtVersion::has_load_library, true)
    }
    /// Timing caches: TensorRT only (TensorRT-RTX deprecates them).
    pub fn has_timing_cache(self) -> bool {
        self.backend == Backend::Trt
    }
    /// Oldest version this tool drives.
    pub fn min_supported(self) -> TrtVersion {
        match self.backend {
            Backend::Trt => TrtVersion::MIN_SUPPORTED,
            Backend::Rtx => TrtVersion::new(1, 0, 0),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.backend, self.version)
    }
}

/// A TensorRT library version (major.minor.patch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrtVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl TrtVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Decodes the integer `getInferLibVersion()` returns (= `NV_TENSORRT_VERSION`).
    ///
    /// TensorRT ≤ 8 encodes `major*1000 + minor*100 + patch` (8.6.1 → 8601); from TensorRT 10 on
    /// it is `major*10000 + minor*100 + patch` (10.14.1 → 101401), so the value alone tells the
    /// encoding: every old-style value is below 10000.
    pub fn from_lib_int(v: i32) -> Option<Self> {
        if v <= 0 {
            return None;
        }
        let v = v as u32;
        Some(if v < 10_000 {
            Self::new(v / 1000, (v / 100) % 10, v % 100)
        } else {
            Self::new(v / 10_000, (v / 100) % 100, v % 100)
        })
    }

    /// TensorRT 11 builds strongly typed networks only: the ONNX's types decide the precision.
    pub fn strongly_typed_only(self) -> bool {
        self.major >= 11
    }

    /// Builder precision flags (kFP16, kBF16) exist: 8.x–10.x.
    pub fn has_precision_flags(self) -> bool {
        self.major <= 10
    }

    /// `BuilderFlag::kBF16` and trtexec's `--bf16` (TensorRT 9 on; Jetson's 8.x lacks them).
    pub fn has_bf16_flag(self) -> bool {
        self.major >= 9 && self.major <= 10
    }

    /// `NetworkDefinitionCreationFlag::kSTRONGLY_TYPED` (TensorRT 10 on, 9.x only in previews).
    pub fn has_strongly_typed(self) -> bool {
        self.major >= 10
    }

    /// `IPluginRegistry::loadLibrary` (TensorRT 8.6 on); older ones need static registration.
    pub fn has_load_library(self) -> bool {
        self >= Self::new(8, 6, 0)
    }

    /// trtexec's `--staticPlugins` / `--dynamicPlugins` (TensorRT 10 on; `--plugins` before).
    pub fn has_split_plugin_flags(self) -> bool {
        self.major >= 10
    }

    /// Oldest TensorRT this tool drives: 8.5 brought the name-based I/O API (`setInputShape`,
    /// `setTensorAddress`, `enqueueV3`) used throughout (JetPack 5.1 ships 8.5.2).
    pub const MIN_SUPPORTED: TrtVersion = TrtVersion::new(8, 5, 0);
}

impl fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_encodings() {
        // Values as the headers define NV_TENSORRT_VERSION for these releases.
        assert_eq!(
            TrtVersion::from_lib_int(8502),
            Some(TrtVersion::new(8, 5, 2))
        );
        assert_eq!(
            TrtVersion::from_lib_int(8601),
            Some(TrtVersion::new(8, 6, 1))
        );
        assert_eq!(
            TrtVersion::from_lib_int(100_300),
            Some(TrtVersion::new(10, 3, 0))
        );
        assert_eq!(
            TrtVersion::from_lib_int(101_401),
            Some(TrtVersion::new(10, 14, 1))
        );
        assert_eq!(
            TrtVersion::from_lib_int(110_002),
            Some(TrtVersion::new(11, 0, 2))
        );
        assert_eq!(TrtVersion::from_lib_int(0), None);
        assert_eq!(TrtVersion::from_lib_int(-5), None);
    }

    #[test]
    fn capabilities_per_major() {
        let v85 = TrtVersion::new(8, 5, 2);
        let v86 = TrtVersion::new(8, 6, 1);
        let v10 = TrtVersion::new(10, 3, 0);
        let v11 = TrtVersion::new(11, 0, 0);
        assert!(!v85.has_load_library() && v86.has_load_library());
        assert!(v85.has_precision_flags() && v10.has_precision_flags());
        assert!(!v11.has_precision_flags() && v11.strongly_typed_only());
        assert!(!v86.has_bf16_flag() && v10.has_bf16_flag() && !v11.has_bf16_flag());
        assert!(!v86.has_split_plugin_flags() && v10.has_split_plugin_flags());
        assert!(v85 >= TrtVersion::MIN_SUPPORTED);
        assert!(TrtVersion::new(8, 4, 3) < TrtVersion::MIN_SUPPORTED);
    }

    #[test]
    fn tensorrt_rtx_is_strongly_typed_with_load_library() {
        // getInferLibVersion() of TensorRT-RTX 1.7.1 returns 10701 (major·10000 + ...).
        let v = TrtVersion::from_lib_int(10_701).unwrap();
        assert_eq!(v, TrtVersion::new(1, 7, 1));
        let rtx = Target::rtx(v);
        assert!(rtx.strongly_typed_only() && rtx.has_strongly_typed());
        assert!(!rtx.has_precision_flags() && !rtx.has_bf16_flag() && !rtx.has_timing_cache());
        assert!(rtx.has_load_library() && v >= rtx.min_supported());
        assert_eq!(rtx.to_string(), "TensorRT-RTX 1.7.1");
        // The same number read as TensorRT would be too old and weakly typed.
        let trt = Target::trt(v);
        assert!(!trt.strongly_typed_only() && v < trt.min_supported());
        assert_eq!(trt.to_string(), "TensorRT 1.7.1");
    }
}
