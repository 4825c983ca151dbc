//! Whole feed-forward blocks in one call, over `nn.Linear` weights: [`ffn`] and [`gated_mlp`]
//! (SwiGLU, GeGLU), configured by an [`MlpConfig`].

use std::mem::MaybeUninit;

use super::{Activation, MatmulPath, check_memory, memory_of, raw_or_null};
use crate::context::{Context, Stream};
use crate::error::{Result, check};
use crate::sys;
use crate::tensor::{TensorMut, TensorRef};
use crate::workspace::Workspace;

/// The options of [`ffn`] and [`gated_mlp`] (`llmk_mlp_config`). [`MlpConfig::default`] holds
/// the library's defaults (`llmk_mlp_config_init`); change the fields that differ:
///
/// ```
/// let mut config = llmk::MlpConfig::default();
/// config.allow_tf32 = true;
/// assert_eq!(config.path, llmk::MatmulPath::Auto);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MlpConfig {
    /// As [`MatmulConfig::allow_tf32`](crate::MatmulConfig::allow_tf32), for every GEMM.
    /// Default `false`.
    pub allow_tf32: bool,
    /// The engine of every GEMM on a CUDA context. Default [`MatmulPath::Auto`].
    pub path: MatmulPath,
    /// `true` runs every cuBLASLt GEMM of the block as [`matmul_tune`](crate::matmul_tune) runs
    /// it: its algorithms are timed and the fastest pinned in the context's plan cache, so later
    /// calls with the same shapes, dtype and pointer alignments (the same `x`, `y` and
    /// `workspace`, typically) run it with no further query. A start-up call: it synchronizes
    /// and allocates, and a stream being captured is refused with
    /// [`Status::Unsupported`](crate::Status::Unsupported). Default `false`.
    pub tune: bool,
}

impl Default for MlpConfig {
    /// The library's defaults, from `llmk_mlp_config_init`.
    fn default() -> Self {
        let raw = init_raw();
        Self {
            allow_tf32: raw.allow_tf32 != 0,
            // A library of this crate's ABI (checked when a context is created) sets a path this
            // crate knows.
            path: MatmulPath::from_field(raw.path).expect("llmk_mlp_config_init sets a known path"),
            tune: raw.tune != 0,
        }
    }
}

impl MlpConfig {
    /// The `llmk_mlp_config` to pass: `llmk_mlp_config_init`'s, so that `struct_size` and any
    /// field this crate does not know keep the library's values, overwritten by these fields.
    pub fn to_raw(&self) -> sys::llmk_mlp_config {
        sys::llmk_mlp_config {
            allow_tf32: i32::from(self.allow_tf32),
            path: self.path.to_field(),
            tune: i32::from(self.tune),
            ..init_raw()
        }
    }
}

fn init_raw() -> sys::llmk_mlp_config {
    let mut raw = MaybeUninit::<sys::llmk_mlp_config>::uninit();
    // SAFETY: llmk_mlp_config_init fills every field of the struct it is given.
    unsafe {
        sys::llmk_mlp_config_init(raw.as_mut_ptr());
        raw.assume_init()
    }
}

/// The bytes of workspace [`ffn`] needs for `x` `[tokens, d_model]` and `w1` `[d_ff, d_model]`.
/// Nothing is read through the views.
pub fn ffn_workspace_size(ctx: &Context, x: &TensorRef<'_>, w1: &TensorRef<'_>) -> Result<usize> {
    let mut bytes = 0;
    // SAFETY: a live context, views that outlive the call (whose data it does not read), and a
    // valid out-pointer.
    check(unsafe {
        sys::llmk_ffn_workspace_size(ctx.as_raw(), x.as_raw(), w1.as_raw(), &mut bytes)
    })?;
    Ok(bytes)
}

/// `y = a(x W1^T + b1) W2^T + b2`: the MLP of GPT-2 / BERT style blocks, in one call.
///
/// - Weights are `nn.Linear`'s, `[out_features, in_features]`, last dimension contiguous, row
///   stride free: `w1`: `[d_ff, d_model]`, `w2`: `[d_model, d_ff]`. `b1`: `[d_ff]` and `b2`:
///   `[d_model]`, contiguous, or `None`.
/// - `x` and `y`: `[tokens, d_model]`, last dimension contiguous, row strides free; `y` overlaps
///   no input. One dtype for every tensor: F32, F16 or BF16.
/// - The intermediate activations live in `workspace`: at least the bytes
///   [`ffn_workspace_size`] returns for these shapes, aligned to 16 bytes (a
///   [`DeviceBuffer`](crate::DeviceBuffer) is), in the context's memory space.
///
/// Each GEMM runs as [`matmul`](crate::matmul) would (same engines, same numerics), the
/// activation fused into the first, and the intermediate is rounded to the dtype as separate
/// calls would round it.
#[allow(clippy::too_many_arguments)]
pub fn ffn(
    ctx: &Context,
    config: &MlpConfig,
    x: &TensorRef<'_>,
    w1: &TensorRef<'_>,
    b1: Option<&TensorRef<'_>>,
    w2: &TensorRef<'_>,
    b2: Option<&TensorRef<'_>>,
    activation: Activation,
    workspace: &mut Workspace<'_>,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "ffn",
        &[
            ("x", x.memory()),
            ("w1", w1.memory()),
            ("b1", memory_of(b1)),
            ("w2", w2.memory()),
            ("b2", memory_of(b2)),
            ("workspace", workspace.memory()),
            ("y", y.memory()),
        ],
    )?;
    let config = config.to_raw();
    // SAFETY: the views and the workspace are valid for what the op does with them (their
    // constructors' contracts), in the context's memory space (checked above), and the stream is
    // valid by its contract; a NULL bias is the C API's "no bias". The config outlives the call.
    check(unsafe {
        sys::llmk_ffn(
            ctx.as_raw(),
            &config,
            x.as_raw(),
            w1.as_raw(),
            raw_or_null(b1),
            w2.as_raw(),
            raw_or_null(b2),
            activation.to_raw(),
            workspace.as_ptr(),
            workspace.len(),
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

/// The bytes of workspace [`gated_mlp`] needs for `x` `[tokens, d_model]` and `w_gate`
/// `[d_ff, d_model]`. Nothing is read through the views.
pub fn gated_mlp_workspace_size(
    ctx: &Context,
    x: &TensorRef<'_>,
    w_gate: &TensorRef<'_>,
) -> Result<usize> {
    let mut bytes = 0;
    // SAFETY: as in ffn_workspace_size.
    check(unsafe {
        sys::llmk_gated_mlp_workspace_size(ctx.as_raw(), x.as_raw(), w_gate.as_raw(), &mut bytes)
    })?;
    Ok(bytes)
}

/// `y = (a(x Wg^T) * (x Wu^T)) Wd^T`: the Llama / Mistral MLP with [`Activation::Silu`]
/// (SwiGLU), GeGLU with [`Activation::Gelu`] or [`Activation::GeluTanh`].
///
/// `w_gate` and `w_up`: `[d_ff, d_model]`; `w_down`: `[d_model, d_ff]`. vLLM's fused
/// `[2 d_ff, d_model]` gate_up weight is two views of one buffer: `w_gate` its first `d_ff` rows,
/// `w_up` the next `d_ff` (e.g. [`DeviceBuffer::view_at`](crate::DeviceBuffer::view_at) with
/// offsets 0 and `d_ff * d_model`). `x`, `y`, the dtype and `workspace` (at least
/// [`gated_mlp_workspace_size`] bytes) are as for [`ffn`].
///
/// For a few tokens (the GEMV engine) one kernel reads both weights and applies
/// `a(gate) * up` in f32 before writing; for more, one GEMM (two when `w_gate` and `w_up` are not
/// one fused buffer) writes `[gate | up]`, rounded to the dtype, and
/// [`gated_activation`](crate::gated_activation)'s kernel combines them.
#[allow(clippy::too_many_arguments)]
pub fn gated_mlp(
    ctx: &Context,
    config: &MlpConfig,
    x: &TensorRef<'_>,
    w_gate: &TensorRef<'_>,
    w_up: &TensorRef<'_>,
    w_down: &TensorRef<'_>,
    activation: Activation,
    workspace: &mut Workspace<'_>,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "gated_mlp",
        &[
            ("x", x.memory()),
            ("w_gate", w_gate.memory()),
            ("w_up", w_up.memory()),
            ("w_down", w_down.memory()),
            ("workspace", workspace.memory()),
            ("y", y.memory()),
        ],
    )?;
    let config = config.to_raw();
    // SAFETY: as in ffn.
    check(unsafe {
        sys::llmk_gated_mlp(
            ctx.as_raw(),
            &config,
            x.as_raw(),
            w_gate.as_raw(),
            w_up.as_raw(),
            w_down.as_raw(),
            activation.to_raw(),
            workspace.as_ptr(),
            workspace.len(),
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_library() {
        let config = MlpConfig::default();
        assert_eq!(
            (config.allow_tf32, config.path, config.tune),
            (false, MatmulPath::Auto, false)
        );
        let raw = config.to_raw();
        assert_eq!(raw.struct_size, std::mem::size_of::<sys::llmk_mlp_config>());
        let raw = MlpConfig {
            allow_tf32: true,
            path: MatmulPath::CublasLt,
            tune: true,
        }
        .to_raw();
        assert_eq!((raw.allow_tf32, raw.path, raw.tune), (1, 1, 1));
    }
}
