//! What both kernel benchmarks share: the input generator and the timing by CUDA-graph replay.
//! Rounding, upload and download in an activation dtype come from `tests/gpu_util`.
#![allow(dead_code)]

use std::ffi::c_void;

use cudarc::driver::sys;

pub const REPS: usize = 20;
pub const WARMUP: usize = 3;
pub const TIMED: usize = 15;

/// `data` as an fp32 .npy of `shape` (inputs and outputs handed to the mamba_ssm scripts).
pub fn write_npy(path: &std::path::Path, shape: &[u64], data: &[f32]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).expect("create npy"));
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(f)
        .begin_nd()
        .expect("npy header");
    w.extend(data.iter().copied()).expect("npy data");
    w.finish().expect("npy finish");
}

pub fn ck(r: sys::CUresult, what: &str) {
    assert_eq!(r, sys::CUresult::CUDA_SUCCESS, "{what}");
}

/// xorshift64: the same inputs on every run and machine.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn vec(&mut self, lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next()).collect()
    }
}

/// Median µs per launch over graph replays of `REPS` launches of `launch` (which enqueues one
/// launch on the stream it is given and panics on a failed launch).
///
/// A graph of `REPS` back-to-back launches is captured on a fresh stream, replayed `WARMUP`
/// times, then timed `TIMED` times with events. One eager launch first loads the module
/// outside the capture and checks the launch.
pub fn time_graph(launch: &dyn Fn(*mut c_void)) -> f64 {
    let mut s: sys::CUstream = std::ptr::null_mut();
    let mut graph: sys::CUgraph = std::ptr::null_mut();
    let mut exec: sys::CUgraphExec = std::ptr::null_mut();
    let (mut e0, mut e1): (sys::CUevent, sys::CUevent) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: plain driver calls on handles created here; `launch` enqueues on the stream it is
    // given, with pointers its caller keeps alive.
    unsafe {
        ck(sys::cuStreamCreate(&mut s, 1), "cuStreamCreate");
        launch(s as *mut c_void);
        ck(sys::cuStreamSynchronize(s), "sync after eager launch");
        ck(
            sys::cuStreamBeginCapture_v2(
                s,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            ),
            "begin capture",
        );
        for _ in 0..REPS {
            launch(s as *mut c_void);
        }
        ck(sys::cuStreamEndCapture(s, &mut graph), "end capture");
        ck(
            sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0),
            "instantiate",
        );
        ck(sys::cuEventCreate(&mut e0, 0), "event");
        ck(sys::cuEventCreate(&mut e1, 0), "event");
        for _ in 0..WARMUP {
            ck(sys::cuGraphLaunch(exec, s), "graph launch");
        }
        let mut times = Vec::with_capacity(TIMED);
        for _ in 0..TIMED {
            ck(sys::cuEventRecord(e0, s), "record");
            ck(sys::cuGraphLaunch(exec, s), "graph launch");
            ck(sys::cuEventRecord(e1, s), "record");
            ck(sys::cuEventSynchronize(e1), "event sync");
            let mut ms = 0f32;
            ck(sys::cuEventElapsedTime(&mut ms, e0, e1), "elapsed");
            times.push(ms as f64 * 1000.0 / REPS as f64);
        }
        ck(sys::cuCtxSynchronize(), "final sync");
        sys::cuEventDestroy_v2(e0);
        sys::cuEventDestroy_v2(e1);
        sys::cuGraphExecDestroy(exec);
        sys::cuGraphDestroy(graph);
        sys::cuStreamDestroy_v2(s);
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        times[TIMED / 2]
    }
}
