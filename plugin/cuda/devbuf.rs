//! A minimal owned device allocation for tests, benchmarks and tools (never used on the launch
//! path). Synchronous copies; the current context must be the one the buffer was made in.

use cudarc::driver::sys;

use super::module::check;
use super::CudaError;

/// `bytes` of device memory, freed on drop.
#[derive(Debug)]
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

impl DeviceBuffer {
    /// Uninitialised allocation (at least one byte, so the pointer is never 0).
    pub fn alloc(bytes: usize) -> Result<Self, CudaError> {
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: out-pointer to a local; a context must be current (the driver checks).
        check(
            unsafe { sys::cuMemAlloc_v2(&mut ptr, bytes.max(1)) },
            "cuMemAlloc",
        )?;
        Ok(Self { ptr, bytes })
    }

    /// Allocation holding a copy of `data`.
    pub fn from_slice<T: Copy>(data: &[T]) -> Result<Self, CudaError> {
        let b = Self::alloc(std::mem::size_of_val(data))?;
        b.write(data)?;
        Ok(b)
    }

    /// Copies `data` to the start of the buffer (synchronous).
    pub fn write<T: Copy>(&self, data: &[T]) -> Result<(), CudaError> {
        let n = std::mem::size_of_val(data);
        assert!(n <= self.bytes, "write of {n} bytes into {}", self.bytes);
        // SAFETY: ptr owns at least n bytes; data is n readable bytes.
        check(
            unsafe { sys::cuMemcpyHtoD_v2(self.ptr, data.as_ptr() as *const _, n) },
            "cuMemcpyHtoD",
        )
    }

    /// Fills every byte with `v` (synchronous).
    pub fn fill_bytes(&self, v: u8) -> Result<(), CudaError> {
        // SAFETY: ptr owns self.bytes bytes.
        check(
            unsafe { sys::cuMemsetD8_v2(self.ptr, v, self.bytes) },
            "cuMemsetD8",
        )
    }

    /// Sets `count` 16-bit words from word `first` to `v` (synchronous).
    pub fn fill_u16(&self, first: usize, count: usize, v: u16) -> Result<(), CudaError> {
        assert!(
            (first + count) * 2 <= self.bytes,
            "fill of words {first}..{} in {} bytes",
            first + count,
            self.bytes
        );
        // SAFETY: the words [first, first + count) lie inside the allocation (asserted).
        check(
            unsafe { sys::cuMemsetD16_v2(self.ptr + first as u64 * 2, v, count) },
            "cuMemsetD16",
        )
    }

    /// Reads the buffer back as `len` values of `T` (synchronous; waits for prior work).
    pub fn read<T: Copy + Default>(&self, len: usize) -> Result<Vec<T>, CudaError> {
        let n = len * std::mem::size_of::<T>();
        assert!(n <= self.bytes, "read of {n} bytes from {}", self.bytes);
        let mut out = vec![T::default(); len];
        // SAFETY: out has n writable bytes; ptr owns at least n bytes.
        check(
            unsafe { sys::cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut _, self.ptr, n) },
            "cuMemcpyDtoH",
        )?;
        Ok(out)
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: ptr came from cuMemAlloc and is freed once.
        unsafe { sys::cuMemFree_v2(self.ptr) };
    }
}
