//! Safe Rust binding of llmk, CUDA kernels for LLM inference behind a stable C API
//! (`libllmk.so`, `include/llmk.h`).
//!
//! - A [`Context`] runs ops on the CPU or on one CUDA device.
//! - Ops take tensor views: [`TensorRef`] for inputs and [`TensorMut`] for outputs, strided
//!   windows that borrow host slices or [`DeviceBuffer`]s and are checked to lie within them:
//!   - normalization: [`rms_norm`], [`add_rms_norm`], [`layer_norm`];
//!   - activations: [`bias_activation`], [`gated_activation`] (SwiGLU, GeGLU), by [`Activation`];
//!   - [`rope`], configured by a [`RopeConfig`];
//!   - [`embedding`];
//!   - KV caches: [`kv_cache_write`], [`paged_kv_cache_write`];
//!   - the optimizer step [`adamw_step`], configured by an [`AdamWConfig`];
//!   - matrix multiplication [`matmul`] (`D = a(alpha * A B + beta * C + bias)`), configured by
//!     a [`MatmulConfig`] ([`MatmulPath`]), with [`matmul_path_for`] and [`matmul_cache_stats`],
//!     and [`matmul_tune`], which times cuBLASLt's candidate algorithms for a call and pins the
//!     fastest ([`MatmulTuning`]);
//!   - feed-forward blocks [`ffn`] and [`gated_mlp`] (SwiGLU, GeGLU), configured by an
//!     [`MlpConfig`], with their scratch memory in a [`Workspace`] of [`ffn_workspace_size`] or
//!     [`gated_mlp_workspace_size`] bytes;
//!   - attention (prefill, flash): [`attention`] over a padded batch and [`attention_varlen`]
//!     over packed sequences, configured by an [`AttentionConfig`] (causal, sliding window,
//!     soft-cap, dropout, the CUDA kernel: [`AttentionKernel`]), GQA and MQA, with an optional
//!     log-sum-exp output;
//!
//!   and an `*_in_place` form of the ops whose output may be exactly an input.
//! - Elements are `f32`, [`F16`] or [`Bf16`] ([`FloatElement`]s), and `i32` or `i64` for ids,
//!   positions and slots (also `i8` and `u8`: every [`Element`]).
//! - Every fallible call returns [`Result`]; an [`Error`] has the [`Status`] and the library's
//!   message naming the argument at fault.
//!
//! ```
//! use llmk::{Context, Stream, TensorMut, TensorRef};
//!
//! let ctx = Context::cpu()?;
//! let x = [1.0f32, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 0.0];
//! let weight = [1.0f32; 4];
//! let mut y = [0.0f32; 8];
//! llmk::rms_norm(
//!     &ctx,
//!     &TensorRef::contiguous(&x, &[2, 4])?,
//!     &TensorRef::contiguous(&weight, &[4])?,
//!     1e-6,
//!     &mut TensorMut::contiguous(&mut y, &[2, 4])?,
//!     Stream::DEFAULT,
//! )?;
//! assert!((y[4] + 2f32.sqrt()).abs() < 1e-5); // -1 / sqrt(mean(1, 0, 1, 0) + eps)
//! # Ok::<(), llmk::Error>(())
//! ```

use std::ffi::CStr;

mod buffer;
mod context;
mod dtype;
mod error;
mod ops;
mod tensor;
mod workspace;

pub use buffer::DeviceBuffer;
pub use context::{Backend, Context, Stream, cuda_device_count};
pub use dtype::{Bf16, DType, Element, F16, FloatElement};
pub use error::{Error, Result, Status};
pub use llmk_sys as sys;
pub use ops::{
    Activation, AdamWConfig, AttentionConfig, AttentionKernel, MatmulCacheStats, MatmulConfig,
    MatmulPath, MatmulTuning, MlpConfig, RopeConfig, RopeStyle, adamw_step, add_rms_norm,
    add_rms_norm_in_place, attention, attention_varlen, bias_activation, bias_activation_in_place,
    embedding, ffn, ffn_workspace_size, gated_activation, gated_activation_in_place, gated_mlp,
    gated_mlp_workspace_size, kv_cache_write, layer_norm, layer_norm_in_place, matmul,
    matmul_cache_stats, matmul_in_place, matmul_path_for, matmul_tune, matmul_tune_in_place,
    paged_kv_cache_write, rms_norm, rms_norm_in_place, rope,
};
pub use tensor::{TensorMut, TensorRef};
pub use workspace::Workspace;

/// The ABI version of `llmk.h` this crate was written for: [`check_abi`] requires the loaded
/// library to have it.
pub const ABI_VERSION: i32 = 0;

// The bindings must come from a header of the same ABI.
const _: () = assert!(sys::LLMK_ABI_VERSION == ABI_VERSION);

/// The most dimensions a view can have.
pub const MAX_DIMS: usize = sys::LLMK_MAX_DIMS as usize;

/// The version of the loaded library, "MAJOR.MINOR.PATCH".
pub fn version() -> String {
    // SAFETY: llmk_version returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::llmk_version()) }
        .to_string_lossy()
        .into_owned()
}

/// The ABI version of the loaded library (`llmk_abi_version()`).
pub fn abi_version() -> i32 {
    // SAFETY: no arguments, no preconditions.
    unsafe { sys::llmk_abi_version() }
}

/// Fails with [`Status::Unsupported`] unless the loaded library has the ABI version this crate was
/// written for ([`ABI_VERSION`]). Creating a [`Context`] calls it first.
pub fn check_abi() -> Result<()> {
    let loaded = abi_version();
    if loaded == ABI_VERSION {
        return Ok(());
    }
    Err(Error::new(
        Status::Unsupported,
        format!(
            "the loaded libllmk {} has ABI version {loaded}, but this crate was written for ABI \
             version {ABI_VERSION}; use libllmk.so.{ABI_VERSION} or a matching llmk crate",
            version()
        ),
    ))
}

// Compiles and runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loaded_library_matches() {
        check_abi().unwrap();
        assert_eq!(abi_version(), ABI_VERSION);
        let header = format!(
            "{}.{}.{}",
            sys::LLMK_VERSION_MAJOR,
            sys::LLMK_VERSION_MINOR,
            sys::LLMK_VERSION_PATCH
        );
        assert_eq!(version(), header);
    }
}
