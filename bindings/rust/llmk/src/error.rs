//! How calls fail: a [`Status`] and the library's message, in an [`Error`].

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! statuses {
    ($($(#[doc = $doc:literal])* $variant:ident = $raw:ident,)*) => {
        /// Why a call failed: the failure values of `llmk_status`, with the same numbers
        /// ([`Status::to_raw`]).
        ///
        /// Statuses are append-only in the C API: one this crate does not know yet (from a newer
        /// library) is [`Status::Unknown`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Status {
            $($(#[doc = $doc])* $variant,)*
            /// A value of `llmk_status` that this crate does not know.
            Unknown(u32),
        }

        impl Status {
            /// The status of a failed call (`status` is not `LLMK_SUCCESS`).
            fn from_raw(status: sys::llmk_status) -> Self {
                match status {
                    $(sys::llmk_status::$raw => Self::$variant,)*
                    other => Self::Unknown(other.0),
                }
            }

            /// The `llmk_status` value.
            pub fn to_raw(self) -> sys::llmk_status {
                match self {
                    $(Self::$variant => sys::llmk_status::$raw,)*
                    Self::Unknown(raw) => sys::llmk_status(raw),
                }
            }
        }
    };
}

statuses! {
    /// A required pointer (context, tensor, data) is NULL.
    NullPointer = LLMK_ERROR_NULL_POINTER,
    /// A tensor's dtype is not one the op takes.
    UnsupportedDtype = LLMK_ERROR_UNSUPPORTED_DTYPE,
    /// Two tensors that must share a dtype do not.
    DtypeMismatch = LLMK_ERROR_DTYPE_MISMATCH,
    /// A tensor has a number of dimensions the op (or a view) does not take.
    InvalidNdim = LLMK_ERROR_INVALID_NDIM,
    /// A shape that cannot be: a negative or too large extent, or shape and strides of different
    /// lengths.
    InvalidShape = LLMK_ERROR_INVALID_SHAPE,
    /// Two tensors whose shapes must agree do not, or a host slice and a buffer copied between
    /// differ in length.
    ShapeMismatch = LLMK_ERROR_SHAPE_MISMATCH,
    /// A negative stride, or a view that reaches beyond its memory.
    InvalidStride = LLMK_ERROR_INVALID_STRIDE,
    /// A dimension that must have stride 1 does not.
    NotContiguous = LLMK_ERROR_NOT_CONTIGUOUS,
    /// A data pointer that is not a multiple of the element size, or a workspace that does not
    /// start on the alignment its op needs.
    Misaligned = LLMK_ERROR_MISALIGNED,
    /// An output overlaps an input, another output or itself in a way the op does not allow.
    Overlap = LLMK_ERROR_OVERLAP,
    /// Host memory passed to a CUDA context, or device memory to the CPU.
    WrongMemorySpace = LLMK_ERROR_WRONG_MEMORY_SPACE,
    /// Device memory, or a stream, of another device than the context's.
    WrongDevice = LLMK_ERROR_WRONG_DEVICE,
    /// A scalar argument out of its range (eps, device ordinal, stream handle).
    InvalidValue = LLMK_ERROR_INVALID_VALUE,
    /// A valid request this backend or this build of the library cannot serve, or a library of
    /// another ABI version than this crate's ([`check_abi`](crate::check_abi)).
    Unsupported = LLMK_ERROR_UNSUPPORTED,
    /// No usable CUDA device or driver.
    NoDevice = LLMK_ERROR_NO_DEVICE,
    /// Out of host or device memory, or a size beyond what a `usize` counts.
    OutOfMemory = LLMK_ERROR_OUT_OF_MEMORY,
    /// A CUDA call failed; the CUDA context is still usable.
    Cuda = LLMK_ERROR_CUDA,
    /// An earlier asynchronous failure poisoned the device's CUDA context for this process.
    CudaContextLost = LLMK_ERROR_CUDA_CONTEXT_LOST,
    /// A bug in llmk.
    Internal = LLMK_ERROR_INTERNAL,
}

impl fmt::Display for Status {
    /// The library's name for the status (`llmk_status_string`), e.g. "shape mismatch".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(raw) => write!(f, "unknown status {raw}"),
            known => {
                // SAFETY: llmk_status_string returns a static NUL-terminated string, never NULL,
                // for every value of the enum; `known` is one of them.
                let name = unsafe { CStr::from_ptr(sys::llmk_status_string(known.to_raw())) };
                f.write_str(&name.to_string_lossy())
            }
        }
    }
}

/// A failed call: its [`Status`], and the message saying which argument was wrong and why, e.g.
/// "rms_norm: weight has 4095 elements, x rows have 4096".
///
/// For a failure inside the library the message is `llmk_last_error_message()`, read on the
/// calling thread right after the call. This crate checks a few things itself before calling the
/// library (that a view fits its slice, that memory is in the context's space); those errors
/// carry the status the library uses for the same kind of problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Why the call failed.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The detail message, naming the operation and the argument.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// `Ok` for `LLMK_SUCCESS`; otherwise the error, with the calling thread's message. Call it on
/// the status of an llmk call before making any other llmk call on the same thread.
pub(crate) fn check(status: sys::llmk_status) -> Result<()> {
    if status == sys::llmk_status::LLMK_SUCCESS {
        return Ok(());
    }
    // SAFETY: llmk_last_error_message never returns NULL, and its string stays valid until the
    // next llmk call on this thread; it is copied before any.
    let message = unsafe { CStr::from_ptr(sys::llmk_last_error_message()) };
    Err(Error::new(
        Status::from_raw(status),
        message.to_string_lossy(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_the_c_values() {
        assert_eq!(Status::NullPointer.to_raw().0, 1);
        assert_eq!(Status::Internal.to_raw().0, 19);
        assert_eq!(
            Status::from_raw(sys::llmk_status::LLMK_ERROR_OVERLAP),
            Status::Overlap
        );
        assert_eq!(
            Status::from_raw(sys::llmk_status(1000)),
            Status::Unknown(1000)
        );
        assert_eq!(Status::Unknown(1000).to_raw().0, 1000);
    }

    #[test]
    fn display_uses_the_library_names() {
        assert_eq!(Status::ShapeMismatch.to_string(), "shape mismatch");
        assert_eq!(Status::Unknown(77).to_string(), "unknown status 77");
        let error = Error::new(Status::InvalidValue, "rms_norm: eps is nan");
        assert_eq!(error.to_string(), "invalid value: rms_norm: eps is nan");
    }
}
