//! Activations: [`bias_activation`] (bias + GELU, or a plain activation) and
//! [`gated_activation`] (SwiGLU, GeGLU).
//!
//! Elementwise over tensors `[..., n]`: the last dimension of every tensor has stride 1, the
//! leading ones any strides, each tensor its own (merging into at most 3 strided dimensions). All
//! tensors share one dtype: F32, F16 or BF16. Each output element is rounded once.

use super::{check_memory, memory_of, raw_or_null};
use crate::context::{Context, Stream};
use crate::error::{Result, check};
use crate::sys;
use crate::tensor::{TensorMut, TensorRef};

/// The activation function `a` of [`bias_activation`], [`gated_activation`], the matmul
/// epilogue ([`MatmulConfig`](crate::MatmulConfig)), [`ffn`](crate::ffn) and
/// [`gated_mlp`](crate::gated_mlp): the values of `llmk_activation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// `a(x) = x`.
    Identity,
    /// The exact GELU: `x * Φ(x) = x/2 * (1 + erf(x / √2))`.
    Gelu,
    /// GELU's tanh approximation: `x/2 * (1 + tanh(√(2/π) * (x + 0.044715 x³)))`.
    GeluTanh,
    /// SiLU (swish): `x * sigmoid(x) = x / (1 + exp(-x))`.
    Silu,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// The `llmk_activation` value.
    pub fn to_raw(self) -> sys::llmk_activation {
        match self {
            Self::Identity => sys::llmk_activation::LLMK_ACTIVATION_IDENTITY,
            Self::Gelu => sys::llmk_activation::LLMK_ACTIVATION_GELU,
            Self::GeluTanh => sys::llmk_activation::LLMK_ACTIVATION_GELU_TANH,
            Self::Silu => sys::llmk_activation::LLMK_ACTIVATION_SILU,
            Self::Relu => sys::llmk_activation::LLMK_ACTIVATION_RELU,
        }
    }

    /// The activation of an `llmk_activation` value, or `None` for one this crate does not know.
    pub fn from_raw(raw: sys::llmk_activation) -> Option<Self> {
        match raw {
            sys::llmk_activation::LLMK_ACTIVATION_IDENTITY => Some(Self::Identity),
            sys::llmk_activation::LLMK_ACTIVATION_GELU => Some(Self::Gelu),
            sys::llmk_activation::LLMK_ACTIVATION_GELU_TANH => Some(Self::GeluTanh),
            sys::llmk_activation::LLMK_ACTIVATION_SILU => Some(Self::Silu),
            sys::llmk_activation::LLMK_ACTIVATION_RELU => Some(Self::Relu),
            _ => None,
        }
    }
}

/// `y = a(x + bias)`: bias + GELU (either form) in a transformer's MLP, or a plain activation
/// when `bias` is `None`.
///
/// `x` and `y` are `[..., n]` of one shape; `bias` is `[n]`, contiguous. `y` overlaps nothing
/// (for `y` = `x` use [`bias_activation_in_place`]).
pub fn bias_activation(
    ctx: &Context,
    x: &TensorRef<'_>,
    bias: Option<&TensorRef<'_>>,
    activation: Activation,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "bias_activation",
        &[
            ("x", x.memory()),
            ("bias", memory_of(bias)),
            ("y", y.memory()),
        ],
    )?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract; a
    // NULL bias is the C API's "no bias".
    check(unsafe {
        sys::llmk_bias_activation(
            ctx.as_raw(),
            x.as_raw(),
            raw_or_null(bias),
            activation.to_raw(),
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

/// [`bias_activation`] with `y` = `x`: `x = a(x + bias)` in place.
pub fn bias_activation_in_place(
    ctx: &Context,
    x: &mut TensorMut<'_>,
    bias: Option<&TensorRef<'_>>,
    activation: Activation,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "bias_activation",
        &[("x", x.memory()), ("bias", memory_of(bias))],
    )?;
    // SAFETY: as in bias_activation; passing one view as x and y is the in-place use the library
    // allows.
    check(unsafe {
        sys::llmk_bias_activation(
            ctx.as_raw(),
            x.as_raw(),
            raw_or_null(bias),
            activation.to_raw(),
            x.as_raw(),
            stream.as_raw(),
        )
    })
}

/// `y = a(gate) * up`: SwiGLU with [`Activation::Silu`], GeGLU with [`Activation::Gelu`] or
/// [`Activation::GeluTanh`].
///
/// `gate`, `up` and `y` are `[..., n]` of one shape, each with its own strides. vLLM's
/// `silu_and_mul` layout, `x = [..., 2n]` holding `[gate | up]`, is two views of one buffer:
/// `gate` = the first `n` columns, `up` = the same shape and strides starting `n` elements
/// further (e.g. [`DeviceBuffer::view_at`](crate::DeviceBuffer::view_at) with offsets 0 and
/// `n`). `y` overlaps nothing (for `y` = `gate` use [`gated_activation_in_place`]).
pub fn gated_activation(
    ctx: &Context,
    gate: &TensorRef<'_>,
    up: &TensorRef<'_>,
    activation: Activation,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "gated_activation",
        &[
            ("gate", gate.memory()),
            ("up", up.memory()),
            ("y", y.memory()),
        ],
    )?;
    // SAFETY: as in bias_activation.
    check(unsafe {
        sys::llmk_gated_activation(
            ctx.as_raw(),
            gate.as_raw(),
            up.as_raw(),
            activation.to_raw(),
            y.as_raw(),
            stream.as_raw(),
        )
    })
}

/// [`gated_activation`] with `y` = `gate`: `gate = a(gate) * up` in place.
pub fn gated_activation_in_place(
    ctx: &Context,
    gate: &mut TensorMut<'_>,
    up: &TensorRef<'_>,
    activation: Activation,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "gated_activation",
        &[("gate", gate.memory()), ("up", up.memory())],
    )?;
    // SAFETY: as in bias_activation_in_place.
    check(unsafe {
        sys::llmk_gated_activation(
            ctx.as_raw(),
            gate.as_raw(),
            up.as_raw(),
            activation.to_raw(),
            gate.as_raw(),
            stream.as_raw(),
        )
    })
}
