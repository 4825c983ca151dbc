//! Contexts (a CPU or one CUDA device) and streams.

use std::ffi::c_void;
use std::fmt;
use std::ptr::{self, NonNull};

use crate::error::{Error, Result, Status, check};
use crate::sys;

/// What a [`Context`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The reference implementation of every op, over host memory, on the calling thread.
    Cpu,
    /// One CUDA device; ops are launched asynchronously on a [`Stream`].
    Cuda,
}

impl Backend {
    /// The `llmk_backend` value.
    pub fn to_raw(self) -> sys::llmk_backend {
        match self {
            Self::Cpu => sys::llmk_backend::LLMK_BACKEND_CPU,
            Self::Cuda => sys::llmk_backend::LLMK_BACKEND_CUDA,
        }
    }
}

/// A CUDA stream (`cudaStream_t`) on which ops and copies are ordered; [`Stream::DEFAULT`] is
/// the legacy default stream. CPU contexts ignore it.
///
/// Work on one stream is ordered, work on different streams is not: before reading an op's
/// output through another stream than the op's, wait for it with [`Context::synchronize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream(*mut c_void);

impl Stream {
    /// The legacy default stream (a NULL `cudaStream_t`).
    pub const DEFAULT: Self = Self(ptr::null_mut());

    /// Wraps a `cudaStream_t` (NULL is [`Stream::DEFAULT`]).
    ///
    /// # Safety
    ///
    /// `stream` is NULL or a CUDA stream that stays alive while it is used through this value.
    /// (The library refuses a stream of another device than the context's, but cannot detect
    /// a destroyed one.)
    pub unsafe fn from_raw(stream: *mut c_void) -> Self {
        Self(stream)
    }

    /// The `cudaStream_t`.
    pub fn as_raw(self) -> *mut c_void {
        self.0
    }
}

impl Default for Stream {
    fn default() -> Self {
        Self::DEFAULT
    }
}

// SAFETY: a CUDA stream handle may be used from any thread.
unsafe impl Send for Stream {}
// SAFETY: as above; the handle is never written through.
unsafe impl Sync for Stream {}

/// The number of CUDA devices llmk can use; 0 when there is no driver or GPU.
pub fn cuda_device_count() -> Result<u32> {
    let mut count = 0;
    // SAFETY: `count` is a valid out-pointer.
    check(unsafe { sys::llmk_cuda_device_count(&mut count) })?;
    // Never negative: the library counts devices.
    Ok(count as u32)
}

/// An llmk context, bound to the CPU or to one CUDA device; it is destroyed when dropped.
///
/// A context may be used from several threads at once (each with its own stream on CUDA), so it
/// is `Send` and `Sync`. Dropping it does not wait for work launched with it.
pub struct Context {
    raw: NonNull<sys::llmk_context>,
    backend: Backend,
    device: Option<u32>,
}

// SAFETY: the C API lets a context be used from any thread, several at once.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// A context for the CPU backend.
    pub fn cpu() -> Result<Self> {
        Self::create(Backend::Cpu, None)
    }

    /// A context for CUDA device `device`: fails with [`Status::NoDevice`] without a driver or
    /// GPU, and with [`Status::InvalidValue`] for a device that does not exist.
    pub fn cuda(device: u32) -> Result<Self> {
        Self::create(Backend::Cuda, Some(device))
    }

    /// Checks the library's ABI (see [`check_abi`](crate::check_abi)), then creates the context.
    fn create(backend: Backend, device: Option<u32>) -> Result<Self> {
        crate::check_abi()?;
        // The CPU ignores the ordinal. One beyond i32 cannot exist.
        let ordinal = match device {
            None => 0,
            Some(device) => i32::try_from(device).map_err(|_| {
                Error::new(
                    Status::InvalidValue,
                    format!("context_create: device {device} does not exist"),
                )
            })?,
        };
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer.
        check(unsafe { sys::llmk_context_create(backend.to_raw(), ordinal, &mut raw) })?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::new(Status::Internal, "context_create succeeded but gave NULL")
        })?;
        Ok(Self {
            raw,
            backend,
            device,
        })
    }

    /// The backend the context was created for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The CUDA device ordinal, or `None` for the CPU.
    pub fn device(&self) -> Option<u32> {
        self.device
    }

    /// Waits for all work on `stream`. Fails with [`Status::CudaContextLost`] if that work
    /// failed asynchronously. Returns at once on the CPU, where ops run to completion.
    pub fn synchronize(&self, stream: Stream) -> Result<()> {
        // SAFETY: a live context; the stream is valid by Stream's contract.
        check(unsafe { sys::llmk_synchronize(self.as_raw(), stream.as_raw()) })
    }

    /// The `llmk_context*`, for calls through [`sys`](crate::sys); it stays owned by `self`.
    pub fn as_raw(&self) -> *mut sys::llmk_context {
        self.raw.as_ptr()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by llmk_context_create and destroyed exactly once. Buffers borrow the
        // context, so none outlives it.
        unsafe { sys::llmk_context_destroy(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("backend", &self.backend)
            .field("device", &self.device)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_context() {
        let ctx = Context::cpu().unwrap();
        assert_eq!(ctx.backend(), Backend::Cpu);
        assert_eq!(ctx.device(), None);
        ctx.synchronize(Stream::DEFAULT).unwrap();
    }

    #[test]
    fn missing_cuda_device_is_an_error() {
        let count = cuda_device_count().unwrap();
        let error = Context::cuda(count).unwrap_err();
        let expected = if count == 0 {
            Status::NoDevice
        } else {
            Status::InvalidValue
        };
        assert_eq!(error.status(), expected, "{error}");
        assert!(error.message().contains("context_create"), "{error}");
    }
}
