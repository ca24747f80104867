//! Mutation fuzzing on stable Rust: from every bundled fixture model, mutated models (bit
//! flips, truncations, deleted / duplicated / reordered nodes, cut node inputs, wrong dtypes,
//! huge or negative dims, bad attribute values, external data past the end of its file or out
//! of the model's folder) go through load → patch → verify → interpreter run → fp16
//! conversion. Every case must end in an error or a result: a panic fails the test, an
//! allocation past the cap aborts it (see `Capped`). Fixed seed: a failure reproduces.
//!
//! `S6_FUZZ_CASES` sets the number of cases (default: 1000 in debug builds, as `cargo test`
//! runs it in CI, 20000 with optimisations); `S6_FUZZ_SEED` another seed.

use s6_onnx::interp::Session;
use s6_onnx::patch;
use s6_onnx::proto::{ModelProto, StringStringEntryProto};
use s6_onnx::{fp16, model};
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Live heap bytes above which an allocation fails (and the process aborts): a runaway
/// allocation must not take the CI machine down with it, and must not pass unnoticed.
const HEAP_LIMIT: usize = 2 << 30;
/// The cap on one tensor during the run (`--max-tensor-bytes`): above every fixture tensor.
const TENSOR_CAP: u64 = 1 << 20;

struct Capped;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size() > HEAP_LIMIT {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let more = new - l.size();
            if LIVE.fetch_add(more, Ordering::Relaxed) + more > HEAP_LIMIT {
                LIVE.fetch_sub(more, Ordering::Relaxed);
                return std::ptr::null_mut();
            }
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut out = Vec::new();
    for group in ["models", "fp16", "ops"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(group))
            .unwrap()
            .map(|e| e.unwrap().path().join("model.onnx"))
            .filter(|p| p.exists())
            .collect();
        v.sort();
        out.extend(v);
    }
    out
}

/// Interesting integers: edges of the types, sizes past any cap, negatives.
const NASTY: [i64; 12] = [
    0,
    -1,
    1,
    2,
    -2,
    i64::MAX,
    i64::MIN,
    1 << 31,
    1 << 40,
    (1 << 20) + 1,
    i32::MAX as i64,
    -(1 << 40),
];

/// The data file external-data mutations point at (inside the case folder).
const DATA_FILE: &str = "w.bin";
const DATA_LEN: u64 = 4096;

fn ext(t: &mut s6_onnx::proto::TensorProto, entries: &[(&str, String)]) {
    t.data_location = s6_onnx::proto::tensor_proto::DataLocation::EXTERNAL.into();
    t.raw_data.clear();
    t.external_data = entries
        .iter()
        .map(|(k, v)| {
            let mut e = StringStringEntryProto::new();
            e.key = k.to_string();
            e.value = v.clone();
            e
        })
        .collect();
}

/// One structural mutation of `m`; returns its name.
fn mutate(m: &mut ModelProto, r: &mut Rng) -> &'static str {
    // Retry until one applies (a graph without initializers cannot get external data).
    for _ in 0..16 {
        if let Some(what) = try_mutate(m, r) {
            return what;
        }
    }
    "none"
}

fn try_mutate(m: &mut ModelProto, r: &mut Rng) -> Option<&'static str> {
    let g = m.graph.mut_or_insert_default();
    let nn = g.node.len();
    let ni = g.initializer.len();
    Some(match r.below(14) {
        0 if nn > 0 => {
            g.node.remove(r.below(nn));
            "delete node"
        }
        1 if nn > 0 => {
            let i = r.below(nn);
            let n = g.node[i].clone();
            g.node.insert(r.below(nn + 1), n);
            "duplicate node"
        }
        2 if nn > 1 => {
            let (a, b) = (r.below(nn), r.below(nn));
            g.node.swap(a, b);
            "swap nodes"
        }
        3 if nn > 0 => {
            let n = &mut g.node[r.below(nn)];
            let k = r.below(n.input.len() + 1);
            n.input.truncate(k);
            "cut node inputs"
        }
        4 if nn > 0 => {
            let n = &mut g.node[r.below(nn)];
            n.output.truncate(r.below(n.output.len() + 1));
            "cut node outputs"
        }
        5 if nn > 1 => {
            // Rewire an input to another node's output (may make a cycle).
            let src = g.node[r.below(nn)]
                .output
                .first()
                .cloned()
                .unwrap_or_default();
            let n = &mut g.node[r.below(nn)];
            if !n.input.is_empty() {
                let k = r.below(n.input.len());
                n.input[k] = src;
            }
            "rewire input"
        }
        6 if ni > 0 => {
            let t = &mut g.initializer[r.below(ni)];
            t.data_type = *r.pick(&[0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 14, 16, 17, 99, -1]);
            "initializer dtype"
        }
        7 if ni > 0 => {
            let t = &mut g.initializer[r.below(ni)];
            if t.dims.is_empty() {
                t.dims.push(*r.pick(&NASTY));
            } else {
                let k = r.below(t.dims.len());
                t.dims[k] = *r.pick(&NASTY);
            }
            "initializer dim"
        }
        8 if ni > 0 => {
            let t = &mut g.initializer[r.below(ni)];
            let n = t.raw_data.len();
            t.raw_data.truncate(r.below(n + 1));
            "truncate raw data"
        }
        9 if ni > 0 => {
            // Integer constants drive shapes, indices and axes: make one nasty.
            let t = &mut g.initializer[r.below(ni)];
            if t.data_type == 7 && t.raw_data.len() >= 8 {
                let k = r.below(t.raw_data.len() / 8) * 8;
                t.raw_data[k..k + 8].copy_from_slice(&r.pick(&NASTY).to_le_bytes());
            } else if !t.raw_data.is_empty() {
                let k = r.below(t.raw_data.len());
                t.raw_data[k] ^= 1 << r.below(8);
            }
            "initializer value"
        }
        10 if nn > 0 => {
            let n = &mut g.node[r.below(nn)];
            if let Some(a) = n.attribute.get_mut(r.below(4)) {
                a.i = *r.pick(&NASTY);
                if let Some(x) = a.ints.first_mut() {
                    *x = *r.pick(&NASTY);
                }
                if let Some(t) = a.t.as_mut() {
                    if let Some(d) = t.dims.first_mut() {
                        *d = *r.pick(&NASTY);
                    }
                    t.data_type = *r.pick(&[1, 7, 10, 99]);
                }
            }
            "attribute value"
        }
        11 if ni > 0 => {
            let t = &mut g.initializer[r.below(ni)];
            let len = t.raw_data.len() as u64;
            let off = *r.pick(&[0, DATA_LEN - 1, DATA_LEN, DATA_LEN + 1, u64::MAX, 1 << 40]);
            let length = *r.pick(&[len, 0, DATA_LEN, u64::MAX, u64::MAX - 1, 1 << 40]);
            let mut e = vec![
                ("location", DATA_FILE.to_string()),
                ("offset", off.to_string()),
            ];
            if r.below(3) > 0 {
                e.push(("length", length.to_string()));
            }
            ext(t, &e);
            "external data range"
        }
        12 if ni > 0 => {
            let t = &mut g.initializer[r.below(ni)];
            let loc = *r.pick(&[
                "../w.bin",
                "/etc/hostname",
                "link.bin",
                "",
                "missing.bin",
                ".",
            ]);
            ext(t, &[("location", loc.to_string()), ("offset", "x".into())]);
            if r.below(2) == 0 {
                t.external_data.pop();
            }
            "external data location"
        }
        13 => {
            // Declared graph input shape: a huge or negative dim.
            if let Some(v) = g.input.first_mut() {
                use s6_onnx::proto::type_proto::Value;
                if let Some(Value::TensorType(tt)) = v.type_.mut_or_insert_default().value.as_mut()
                {
                    if let Some(d) = tt.shape.mut_or_insert_default().dim.first_mut() {
                        d.set_dim_value(*r.pick(&NASTY));
                    }
                }
            }
            "input dim"
        }
        _ => return None,
    })
}

/// One byte-level mutation of the file.
fn mutate_bytes(b: &mut Vec<u8>, r: &mut Rng) -> &'static str {
    match r.below(3) {
        0 => {
            for _ in 0..1 + r.below(8) {
                let k = r.below(b.len());
                b[k] ^= 1 << r.below(8);
            }
            "bit flips"
        }
        1 => {
            let k = r.below(b.len());
            b.truncate(k);
            "truncation"
        }
        _ => {
            let k = r.below(b.len());
            let v = r.next().to_le_bytes();
            for (i, x) in v.iter().enumerate() {
                if k + i < b.len() {
                    b[k + i] = *x;
                }
            }
            "overwrite"
        }
    }
}

/// The pipeline on one mutated model. Errors are fine; only panics matter.
fn pipeline(bytes: &[u8], origin: &Path, dir: &Path) {
    let Ok(m) = model::parse(bytes, origin) else {
        return;
    };
    let _ = model::check_external_data(&m, dir);
    let mut inlined = m.clone();
    let _ = model::inline_external_data(&mut inlined, dir);
    let mut patched = m.clone();
    let seq = match patch::patch_model(&mut patched, dir) {
        Ok(report) => {
            let l = report.export_seq_len.unwrap_or(1);
            let _ = patch::verify::verify(&m, dir, &patched, dir, l);
            Some(l)
        }
        Err(_) => None,
    };
    if seq.is_none() {
        if let Ok(s) = Session::new(&m, dir) {
            if let Ok(inputs) = patch::verify::make_inputs(&m, &s, 3, 5) {
                let _ = s.run(&inputs);
            }
        }
    }
    let _ = fp16::convert(&mut m.clone());
    // The streaming load / save of onnx-patch, from the file.
    if std::fs::write(origin, bytes).is_ok() {
        if let Ok((mut lazy, src)) = s6_onnx::stream::load(origin) {
            if patch::patch_model(&mut lazy, dir).is_ok() {
                let _ = s6_onnx::stream::save(&lazy, &dir.join("out.onnx"), dir, &src);
            }
        }
    }
    let _ = patch::verify::verify(&patched, dir, &patched, dir, 2);
}

#[test]
fn mutated_models_end_in_an_error_or_a_result() {
    s6_onnx::data::set_max_tensor_bytes(TENSOR_CAP);
    let cases: usize = std::env::var("S6_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 1000 } else { 20000 });
    let seed: u64 = std::env::var("S6_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0012);
    let dir = std::env::temp_dir().join(format!("s6-fuzz-{}", std::process::id()));
    let case_dir = dir.join("model");
    std::fs::create_dir_all(&case_dir).unwrap();
    std::fs::write(case_dir.join(DATA_FILE), vec![0x3Fu8; DATA_LEN as usize]).unwrap();
    std::fs::write(dir.join("outside.bin"), vec![0u8; DATA_LEN as usize]).unwrap();
    let _ = std::os::unix::fs::symlink(dir.join("outside.bin"), case_dir.join("link.bin"));

    let n_models = fixtures()
        .iter()
        .filter(|p| !p.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ops")))
        .count();
    let originals: Vec<(PathBuf, Vec<u8>)> = fixtures()
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert!(originals.len() >= 100, "{} fixtures", originals.len());
    let parsed: Vec<ModelProto> = originals
        .iter()
        .map(|(p, b)| model::parse(b, p).unwrap())
        .collect();

    // Quiet panics: each is reported below with its case and where it happened.
    static LAST: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    std::panic::set_hook(Box::new(|info| {
        // The frames in this crate say where; the message alone may point into std.
        let bt = std::backtrace::Backtrace::force_capture().to_string();
        let lines: Vec<&str> = bt.lines().collect();
        let ours: Vec<String> = lines
            .windows(2)
            .filter(|w| w[0].contains("s6_onnx::"))
            .take(3)
            .map(|w| format!("{} {}", w[0].trim(), w[1].trim()))
            .collect();
        if let Ok(mut l) = LAST.lock() {
            *l = format!("{info} [{}]", ours.join(" <- "));
        }
    }));
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for case in 0..cases {
        // Half the cases from the exports (the patcher's food), half from the op fixtures.
        let f = if rng.below(2) == 0 {
            rng.below(n_models)
        } else {
            rng.below(originals.len())
        };
        let (path, bytes) = &originals[f];
        let mut what = Vec::new();
        let mutated = if rng.below(4) == 0 {
            let mut b = bytes.clone();
            what.push(mutate_bytes(&mut b, &mut rng));
            b
        } else {
            let mut m = parsed[f].clone();
            for _ in 0..1 + rng.below(3) {
                what.push(mutate(&mut m, &mut rng));
            }
            protobuf::Message::write_to_bytes(&m).unwrap()
        };
        for w in &what {
            *kinds.entry(w).or_default() += 1;
        }
        let origin = case_dir.join("model.onnx");
        let t0 = std::time::Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| pipeline(&mutated, &origin, &case_dir)));
        if std::env::var_os("S6_FUZZ_SLOW").is_some() && t0.elapsed().as_secs_f64() > 1.0 {
            eprintln!(
                "slow case {case} {:?} {what:?}: {:.2} s",
                path,
                t0.elapsed().as_secs_f64()
            );
        }
        if r.is_err() {
            let msg = LAST.lock().map(|l| l.clone()).unwrap_or_default();
            failures.push(format!(
                "case {case} ({}, {what:?}): {msg}",
                path.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
            ));
        }
    }
    let _ = std::panic::take_hook();
    std::fs::remove_dir_all(&dir).unwrap();
    // Straight to stderr (libtest swallows eprintln! of a passing test): CI logs the count.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz: {cases} cases (seed {seed:#x}) over {} fixtures, {} panics; mutations {kinds:?}",
        originals.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
