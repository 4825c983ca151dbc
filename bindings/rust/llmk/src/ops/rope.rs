//! Rotary position embedding: [`rope`], configured by a [`RopeConfig`].

use std::mem::MaybeUninit;

use super::{check_memory, memory_of, raw_mut_or_null, raw_or_null};
use crate::context::{Context, Stream};
use crate::error::{Error, Result, Status, check};
use crate::sys;
use crate::tensor::{Memory, TensorMut, TensorRef};

/// Which dimensions of a head RoPE rotates together: the values of `llmk_rope_style`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RopeStyle {
    /// Pairs `(i, i + rotary_dim/2)`: GPT-NeoX, Hugging Face Llama, vLLM's `is_neox_style=True`.
    Neox,
    /// Pairs `(2i, 2i + 1)`: GPT-J, Meta's original Llama, vLLM's `is_neox_style=False`.
    Gptj,
}

impl RopeStyle {
    /// The `llmk_rope_style` value.
    pub fn to_raw(self) -> sys::llmk_rope_style {
        match self {
            Self::Neox => sys::llmk_rope_style::LLMK_ROPE_NEOX,
            Self::Gptj => sys::llmk_rope_style::LLMK_ROPE_GPTJ,
        }
    }

    /// The style of an `llmk_rope_style` value, or `None` for one this crate does not know.
    pub fn from_raw(raw: sys::llmk_rope_style) -> Option<Self> {
        match raw {
            sys::llmk_rope_style::LLMK_ROPE_NEOX => Some(Self::Neox),
            sys::llmk_rope_style::LLMK_ROPE_GPTJ => Some(Self::Gptj),
            _ => None,
        }
    }
}

/// The options of [`rope`] (`llmk_rope_config`). [`RopeConfig::default`] holds the library's
/// defaults (`llmk_rope_config_init`); change the fields that differ:
///
/// ```
/// use llmk::{RopeConfig, RopeStyle};
///
/// // Llama 3.1: theta 500000 and its frequency scaling.
/// let mut config = RopeConfig::default();
/// config.theta = 500_000.0;
/// config.llama3_factor = 8.0;
/// config.llama3_low_freq_factor = 1.0;
/// config.llama3_high_freq_factor = 4.0;
/// config.llama3_original_max_position = 8192.0;
/// assert_eq!(config.style, RopeStyle::Neox);
/// ```
///
/// The library validates the values when [`rope`] is called.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RopeConfig {
    /// Which dimensions are paired. Default [`RopeStyle::Neox`].
    pub style: RopeStyle,
    /// The dimensions rotated, from the start of each head: even and at most `head_dim`; the
    /// ones past it are left as they are (partial rotary). 0, the default, means `head_dim`.
    pub rotary_dim: u32,
    /// Pair `i` (of `rotary_dim / 2`) turns by `position * theta^(-2i / rotary_dim)`. Default
    /// 10000.
    pub theta: f64,
    /// Llama 3.1's frequency scaling, on when > 0 (default 0: off). With wavelength `w = 2π / f`
    /// of a pair's frequency `f` and `L = llama3_original_max_position`, `f` is kept where
    /// `w < L / llama3_high_freq_factor`, divided by `llama3_factor` where
    /// `w > L / llama3_low_freq_factor`, and blended smoothly in between. Llama 3.1 uses 8, 1, 4
    /// and 8192.
    pub llama3_factor: f64,
    /// See [`llama3_factor`](Self::llama3_factor).
    pub llama3_low_freq_factor: f64,
    /// See [`llama3_factor`](Self::llama3_factor).
    pub llama3_high_freq_factor: f64,
    /// See [`llama3_factor`](Self::llama3_factor).
    pub llama3_original_max_position: f64,
}

impl Default for RopeConfig {
    /// The library's defaults, from `llmk_rope_config_init`.
    fn default() -> Self {
        let raw = init_raw();
        let style = RopeStyle::from_raw(sys::llmk_rope_style(raw.style as u32));
        Self {
            // The defaults come from a library of this crate's ABI (checked when a context is
            // created), whose default style this crate knows.
            style: style.expect("llmk_rope_config_init sets a known style"),
            // Never negative from the library: 0 or a dimension count.
            rotary_dim: raw.rotary_dim as u32,
            theta: raw.theta,
            llama3_factor: raw.llama3_factor,
            llama3_low_freq_factor: raw.llama3_low_freq_factor,
            llama3_high_freq_factor: raw.llama3_high_freq_factor,
            llama3_original_max_position: raw.llama3_original_max_position,
        }
    }
}

impl RopeConfig {
    /// The `llmk_rope_config` to pass: `llmk_rope_config_init`'s, so that `struct_size` and any
    /// field this crate does not know keep the library's values, overwritten by these fields.
    pub fn to_raw(&self) -> Result<sys::llmk_rope_config> {
        let rotary_dim = i32::try_from(self.rotary_dim).map_err(|_| {
            Error::new(
                Status::InvalidValue,
                format!(
                    "rope: rotary_dim {} is more than an int32_t holds",
                    self.rotary_dim
                ),
            )
        })?;
        Ok(sys::llmk_rope_config {
            style: self.style.to_raw().0 as i32,
            rotary_dim,
            theta: self.theta,
            llama3_factor: self.llama3_factor,
            llama3_low_freq_factor: self.llama3_low_freq_factor,
            llama3_high_freq_factor: self.llama3_high_freq_factor,
            llama3_original_max_position: self.llama3_original_max_position,
            ..init_raw()
        })
    }
}

fn init_raw() -> sys::llmk_rope_config {
    let mut raw = MaybeUninit::<sys::llmk_rope_config>::uninit();
    // SAFETY: llmk_rope_config_init fills every field of the struct it is given.
    unsafe {
        sys::llmk_rope_config_init(raw.as_mut_ptr());
        raw.assume_init()
    }
}

/// Rotates `q` and `k` in place by each token's position: in every head, each pair `(a, b)` of
/// rotary dimensions becomes `(a cos - b sin, b cos + a sin)` for the pair's angle at
/// `positions[t]`.
///
/// - `q`: `[tokens, q_heads, head_dim]`; `k`: `[tokens, kv_heads, head_dim]`, or `None` to
///   rotate `q` alone. One dtype, F32, F16 or BF16; `head_dim` contiguous, token and head strides
///   free. `q` and `k` may not overlap. (Slices of one fused QKV buffer interleave, which two
///   Rust borrows cannot express: build them with [`TensorMut::from_raw_parts`].)
/// - `positions`: `[tokens]`, I32 or I64, any stride.
/// - `cos_sin_cache`: `None`, or `[max_position, rotary_dim]` in F32 or `q`'s dtype, last
///   dimension contiguous, as vLLM builds it: row `p` holds the cosines of position `p`'s
///   `rotary_dim / 2` angles, then their sines. With a cache, `theta` and the Llama 3 scaling
///   are not used and positions must lie in `[0, max_position)`: the CPU backend refuses others
///   with [`Status::InvalidValue`] before touching `q` and `k`; on CUDA, whose kernels do not
///   report, such a token gets NaN in its rotated dimensions. Without a cache the angles are
///   computed, so any position (negative ones too) rotates accurately.
pub fn rope(
    ctx: &Context,
    config: &RopeConfig,
    positions: &TensorRef<'_>,
    q: &mut TensorMut<'_>,
    k: Option<&mut TensorMut<'_>>,
    cos_sin_cache: Option<&TensorRef<'_>>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "rope",
        &[
            ("positions", positions.memory()),
            ("q", q.memory()),
            (
                "k",
                k.as_deref().map_or(Memory::Unchecked, TensorMut::memory),
            ),
            ("cos_sin_cache", memory_of(cos_sin_cache)),
        ],
    )?;
    let config = config.to_raw()?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract; a
    // NULL k or cache is the C API's "none". The config outlives the call.
    check(unsafe {
        sys::llmk_rope(
            ctx.as_raw(),
            &config,
            positions.as_raw(),
            q.as_raw(),
            raw_mut_or_null(k),
            raw_or_null(cos_sin_cache),
            stream.as_raw(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_library() {
        let config = RopeConfig::default();
        assert_eq!(config.style, RopeStyle::Neox);
        assert_eq!(config.rotary_dim, 0);
        assert_eq!(config.theta, 10000.0);
        assert_eq!(config.llama3_factor, 0.0);
        let raw = config.to_raw().unwrap();
        assert_eq!(
            raw.struct_size,
            std::mem::size_of::<sys::llmk_rope_config>()
        );
        assert_eq!(raw.style, sys::llmk_rope_style::LLMK_ROPE_NEOX.0 as i32);
    }

    #[test]
    fn fields_reach_the_c_struct() {
        let mut config = RopeConfig {
            style: RopeStyle::Gptj,
            rotary_dim: 64,
            llama3_original_max_position: 8192.0,
            ..RopeConfig::default()
        };
        let raw = config.to_raw().unwrap();
        assert_eq!(raw.style, 1);
        assert_eq!(raw.rotary_dim, 64);
        assert_eq!(raw.llama3_original_max_position, 8192.0);
        assert_eq!(
            RopeStyle::from_raw(sys::llmk_rope_style(1)),
            Some(RopeStyle::Gptj)
        );
        assert_eq!(RopeStyle::from_raw(sys::llmk_rope_style(9)), None);

        config.rotary_dim = u32::MAX;
        let error = config.to_raw().unwrap_err();
        assert_eq!(error.status(), Status::InvalidValue);
        assert!(error.message().contains("rotary_dim"), "{error}");
    }
}
