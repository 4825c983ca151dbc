//! The normalization ops.
//!
//! `x` has shape `[..., hidden]`: each index of the leading dimensions is one row, normalized over
//! the last dimension. The last dimension of `x`, `y` and `residual` has stride 1; the leading
//! ones may have any strides, each tensor its own. `weight` and `bias` are `[hidden]`,
//! contiguous. All tensors share one dtype: F32, F16 or BF16. `eps` is finite and >= 0.
//!
//! On a CPU context an op runs to completion and `stream` is ignored; on a CUDA context it is
//! launched on `stream` and returns at once (see [`Context::synchronize`]).
//!
//! In place: the library lets `y` be exactly `x`, which Rust's borrows cannot express with two
//! views, so each op has an `*_in_place` form that passes one [`TensorMut`] as both. Any other
//! aliasing can only be built with the `unsafe` raw constructors, and the library refuses every
//! other overlap between an output and another tensor with [`Status::Overlap`].
//!
//! [`Status::Overlap`]: crate::Status::Overlap

use super::{check_memory, memory_of, raw_or_null};
use crate::context::{Context, Stream};
use crate::error::{Result, check};
use crate::sys;
use crate::tensor::{TensorMut, TensorRef};

/// `y = x / sqrt(mean(x²) + eps) * weight`, row by row.
pub fn rms_norm(
    ctx: &Context,
    x: &TensorRef<'_>,
    weight: &TensorRef<'_>,
    eps: f32,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "rms_norm",
        &[
            ("x", x.memory()),
            ("weight", weight.memory()),
            ("y", y.memory()),
        ],
    )?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract.
    check(unsafe {
        sys::llmk_rms_norm(
            ctx.as_raw(),
            x.as_raw(),
            weight.as_raw(),
            eps,
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

/// [`rms_norm`] with `y` = `x`: normalizes `x` in place.
pub fn rms_norm_in_place(
    ctx: &Context,
    x: &mut TensorMut<'_>,
    weight: &TensorRef<'_>,
    eps: f32,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "rms_norm",
        &[("x", x.memory()), ("weight", weight.memory())],
    )?;
    // SAFETY: as in rms_norm; passing one view as x and y is the in-place use the library allows.
    check(unsafe {
        sys::llmk_rms_norm(
            ctx.as_raw(),
            x.as_raw(),
            weight.as_raw(),
            eps,
            x.as_raw(),
            stream.as_raw(),
        )
    })
}

/// `residual = x + residual` (rounded to the dtype), then `y = rms_norm(residual, weight, eps)`:
/// the fused residual add of a transformer block, leaving in `residual` the sum that the next
/// skip connection needs.
pub fn add_rms_norm(
    ctx: &Context,
    x: &TensorRef<'_>,
    residual: &mut TensorMut<'_>,
    weight: &TensorRef<'_>,
    eps: f32,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "add_rms_norm",
        &[
            ("x", x.memory()),
            ("residual", residual.memory()),
            ("weight", weight.memory()),
            ("y", y.memory()),
        ],
    )?;
    // SAFETY: as in rms_norm.
    check(unsafe {
        sys::llmk_add_rms_norm(
            ctx.as_raw(),
            x.as_raw(),
            residual.as_raw(),
            weight.as_raw(),
            eps,
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

/// [`add_rms_norm`] with `y` = `x`: `x` receives the normalized sum.
pub fn add_rms_norm_in_place(
    ctx: &Context,
    x: &mut TensorMut<'_>,
    residual: &mut TensorMut<'_>,
    weight: &TensorRef<'_>,
    eps: f32,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "add_rms_norm",
        &[
            ("x", x.memory()),
            ("residual", residual.memory()),
            ("weight", weight.memory()),
        ],
    )?;
    // SAFETY: as in rms_norm_in_place.
    check(unsafe {
        sys::llmk_add_rms_norm(
            ctx.as_raw(),
            x.as_raw(),
            residual.as_raw(),
            weight.as_raw(),
            eps,
            x.as_raw(),
            stream.as_raw(),
        )
    })
}

/// `y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias`, row by row, with the biased
/// variance; no bias when `bias` is `None`.
pub fn layer_norm(
    ctx: &Context,
    x: &TensorRef<'_>,
    weight: &TensorRef<'_>,
    bias: Option<&TensorRef<'_>>,
    eps: f32,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "layer_norm",
        &[
            ("x", x.memory()),
            ("weight", weight.memory()),
            ("bias", memory_of(bias)),
            ("y", y.memory()),
        ],
    )?;
    // SAFETY: as in rms_norm; a NULL bias is the C API's "no bias".
    check(unsafe {
        sys::llmk_layer_norm(
            ctx.as_raw(),
            x.as_raw(),
            weight.as_raw(),
            raw_or_null(bias),
            eps,
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

/// [`layer_norm`] with `y` = `x`: normalizes `x` in place.
pub fn layer_norm_in_place(
    ctx: &Context,
    x: &mut TensorMut<'_>,
    weight: &TensorRef<'_>,
    bias: Option<&TensorRef<'_>>,
    eps: f32,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "layer_norm",
        &[
            ("x", x.memory()),
            ("weight", weight.memory()),
            ("bias", memory_of(bias)),
        ],
    )?;
    // SAFETY: as in rms_norm_in_place.
    check(unsafe {
        sys::llmk_layer_norm(
            ctx.as_raw(),
            x.as_raw(),
            weight.as_raw(),
            raw_or_null(bias),
            eps,
            x.as_raw(),
            stream.as_raw(),
        )
    })
}
