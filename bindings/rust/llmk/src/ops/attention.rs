//! Attention (prefill): [`attention`] over a padded batch and [`attention_varlen`] over packed
//! sequences of different lengths, configured by an [`AttentionConfig`] (whose
//! [`AttentionKernel`] picks the CUDA kernel).

use std::mem::MaybeUninit;

use super::{check_memory, raw_mut_or_null};
use crate::context::{Context, Stream};
use crate::error::{Error, Result, Status, check};
use crate::sys;
use crate::tensor::{Memory, TensorMut, TensorRef};

/// The kernel of an attention call on a CUDA context: the values of `llmk_attention_kernel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttentionKernel {
    /// [`Hopper`](Self::Hopper) where it can run the call, else [`Portable`](Self::Portable).
    Auto,
    /// mma.sync tensor cores (FlashAttention-2's design): every GPU from sm_80 on, every
    /// `head_dim` and option.
    Portable,
    /// wgmma tensor cores (FlashAttention-3's road): an sm_90 GPU (H100, H200) with a library
    /// built for sm_90a, `head_dim` 64 or 128, no soft-cap and no dropout. A call it cannot take
    /// is refused with [`Status::Unsupported`](crate::Status::Unsupported), naming why.
    Hopper,
}

impl AttentionKernel {
    /// The `llmk_attention_kernel` value.
    pub fn to_raw(self) -> sys::llmk_attention_kernel {
        match self {
            Self::Auto => sys::llmk_attention_kernel::LLMK_ATTENTION_KERNEL_AUTO,
            Self::Portable => sys::llmk_attention_kernel::LLMK_ATTENTION_KERNEL_PORTABLE,
            Self::Hopper => sys::llmk_attention_kernel::LLMK_ATTENTION_KERNEL_HOPPER,
        }
    }

    /// The kernel of an `llmk_attention_kernel` value, or `None` for one this crate does not
    /// know.
    pub fn from_raw(raw: sys::llmk_attention_kernel) -> Option<Self> {
        match raw {
            sys::llmk_attention_kernel::LLMK_ATTENTION_KERNEL_AUTO => Some(Self::Auto),
            sys::llmk_attention_kernel::LLMK_ATTENTION_KERNEL_PORTABLE => Some(Self::Portable),
            sys::llmk_attention_kernel::LLMK_ATTENTION_KERNEL_HOPPER => Some(Self::Hopper),
            _ => None,
        }
    }

    /// The kernel of a config field (an `int32_t`).
    pub(crate) fn from_field(raw: i32) -> Option<Self> {
        u32::try_from(raw)
            .ok()
            .and_then(|raw| Self::from_raw(sys::llmk_attention_kernel(raw)))
    }

    pub(crate) fn to_field(self) -> i32 {
        self.to_raw().0 as i32
    }
}

/// The options of [`attention`] and [`attention_varlen`] (`llmk_attention_config`).
/// [`AttentionConfig::default`] holds the library's defaults (`llmk_attention_config_init`): no
/// mask, `scale` `1 / sqrt(head_dim)`, no soft-cap, no dropout, [`AttentionKernel::Auto`].
/// Change the fields that differ:
///
/// ```
/// use llmk::{AttentionConfig, AttentionKernel};
///
/// // Mistral: causal, with a sliding window of 4096 keys.
/// let mut config = AttentionConfig::default();
/// config.causal = true;
/// config.window_left = Some(4096);
/// assert_eq!((config.window_right, config.scale, config.softcap), (None, 0.0, 0.0));
/// assert_eq!(config.kernel, AttentionKernel::Auto);
/// ```
///
/// The library validates the values when the op is called.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct AttentionConfig {
    /// The factor of the scores `q . k`: finite and > 0; 0 (the default) means
    /// `1 / sqrt(head_dim)`.
    pub scale: f32,
    /// The causal mask, bottom-right aligned (the same as `window_right = Some(0)`, and it wins
    /// over a wider `window_right`). Default `false`.
    pub causal: bool,
    /// Query `i` sees no key before position `i + kv_len - q_len - window_left`; `None` (the
    /// default) is no left limit.
    pub window_left: Option<u32>,
    /// Query `i` sees no key after position `i + kv_len - q_len + window_right`; `None` (the
    /// default) is no right limit.
    pub window_right: Option<u32>,
    /// The soft-cap `c` (Gemma 2, Grok): each score `s` becomes `c * tanh(s / c)`. Finite and
    /// > 0, or 0 (the default) for none.
    pub softcap: f32,
    /// The probability that dropout zeroes each attention weight (the kept ones are scaled by
    /// `1 / (1 - dropout_p)`), in `[0, 1)`; 0 (the default) is no dropout. For fine-tuning.
    pub dropout_p: f32,
    /// The fourth word of the Philox counter of the dropout mask. Default 0.
    pub dropout_offset: u32,
    /// The Philox key of the dropout mask: the mask is a function of the seed and offset alone,
    /// the same on every backend (`include/llmk.h` gives the counter). Default 0.
    pub dropout_seed: u64,
    /// The kernel on a CUDA context (ignored on the CPU). Default [`AttentionKernel::Auto`].
    pub kernel: AttentionKernel,
}

impl Default for AttentionConfig {
    /// The library's defaults, from `llmk_attention_config_init`.
    fn default() -> Self {
        let raw = init_raw();
        // A negative window is "no limit" (-1 is the only one the library sets).
        let window = |raw: i32| u32::try_from(raw).ok();
        Self {
            scale: raw.scale,
            causal: raw.causal != 0,
            window_left: window(raw.window_left),
            window_right: window(raw.window_right),
            softcap: raw.softcap,
            dropout_p: raw.dropout_p,
            dropout_offset: raw.dropout_offset,
            dropout_seed: raw.dropout_seed,
            // The defaults come from a library of this crate's ABI (checked when a context is
            // created), whose default kernel this crate knows.
            kernel: AttentionKernel::from_field(raw.kernel)
                .expect("llmk_attention_config_init sets a known kernel"),
        }
    }
}

impl AttentionConfig {
    /// The `llmk_attention_config` to pass: `llmk_attention_config_init`'s, so that
    /// `struct_size` and any field this crate does not know keep the library's values,
    /// overwritten by these fields. A window wider than an `int32_t` holds is refused with
    /// [`Status::InvalidValue`].
    pub fn to_raw(&self) -> Result<sys::llmk_attention_config> {
        let window = |name: &str, window: Option<u32>| -> Result<i32> {
            window.map_or(Ok(-1), |w| {
                i32::try_from(w).map_err(|_| {
                    Error::new(
                        Status::InvalidValue,
                        format!("attention: {name} {w} is more than an int32_t holds"),
                    )
                })
            })
        };
        Ok(sys::llmk_attention_config {
            scale: self.scale,
            causal: i32::from(self.causal),
            window_left: window("window_left", self.window_left)?,
            window_right: window("window_right", self.window_right)?,
            softcap: self.softcap,
            dropout_p: self.dropout_p,
            dropout_offset: self.dropout_offset,
            dropout_seed: self.dropout_seed,
            kernel: self.kernel.to_field(),
            ..init_raw()
        })
    }
}

fn init_raw() -> sys::llmk_attention_config {
    let mut raw = MaybeUninit::<sys::llmk_attention_config>::uninit();
    // SAFETY: llmk_attention_config_init fills every field of the struct it is given.
    unsafe {
        sys::llmk_attention_config_init(raw.as_mut_ptr());
        raw.assume_init()
    }
}

/// `o = softmax(scale * q k^T + mask) v` over a padded batch, exact, without writing the score
/// matrix to memory (flash attention).
///
/// - `q` and `o`: `[batch, q_len, q_heads, head_dim]`; `k` and `v`:
///   `[batch, kv_len, kv_heads, head_dim]`. Every sequence has `q_len` queries and `kv_len`
///   keys.
/// - Each tensor has its own batch, sequence and head strides, so BSHD and BHSD views and
///   slices of one fused QKV buffer work without a copy (build interleaved views with
///   [`TensorRef::from_raw_parts`]); `head_dim` is contiguous, every other stride a multiple of
///   8 elements and every data pointer 16-byte aligned (else [`Status::Misaligned`]).
/// - One dtype, F16 or BF16, for `q`, `k`, `v` and `o`. Scores, softmax and sums are f32 on CUDA
///   (f64 on the CPU), and each element of `o` is rounded once. `head_dim` is 64, 96, 128 or 256
///   (others: [`Status::Unsupported`]).
/// - GQA and MQA: `q_heads` is a multiple of `kv_heads`; query head `h` reads kv head
///   `h / (q_heads / kv_heads)`.
/// - The queries are the last `q_len` positions of their sequence (bottom-right alignment, as in
///   FlashAttention 2.1+): query `i` sits at key position `i + kv_len - q_len`, and the
///   [`AttentionConfig`]'s windows and causal mask count from there. A query that sees no key
///   gets `o = 0` and a log-sum-exp of `-inf`.
/// - `lse`: `None`, or an F32 `[batch, q_heads, q_len]` (any strides) that receives the natural
///   log-sum-exp of each query's visible scores (before dropout).
/// - `o` overlaps no input and `lse` overlaps nothing. No queries (or `batch` 0) is a successful
///   no-op.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    ctx: &Context,
    config: &AttentionConfig,
    q: &TensorRef<'_>,
    k: &TensorRef<'_>,
    v: &TensorRef<'_>,
    o: &mut TensorMut<'_>,
    lse: Option<&mut TensorMut<'_>>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "attention",
        &[
            ("q", q.memory()),
            ("k", k.memory()),
            ("v", v.memory()),
            ("o", o.memory()),
            (
                "lse",
                lse.as_deref().map_or(Memory::Unchecked, TensorMut::memory),
            ),
        ],
    )?;
    let config = config.to_raw()?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract; a
    // NULL lse is the C API's "none". The config outlives the call.
    check(unsafe {
        sys::llmk_attention(
            ctx.as_raw(),
            &config,
            q.as_raw(),
            k.as_raw(),
            v.as_raw(),
            o.as_raw(),
            raw_mut_or_null(lse),
            stream.as_raw(),
        )
    })
}

/// [`attention`] over packed sequences of different lengths, as flash-attention's varlen API.
///
/// - `q` and `o`: `[total_q, q_heads, head_dim]`; `k` and `v`: `[total_k, kv_heads, head_dim]`;
///   strides, dtypes and `head_dim` as for [`attention`].
/// - `cu_seqlens_q` and `cu_seqlens_k`: `[batch + 1]`, I32, contiguous: sequence `s` has queries
///   `cu_seqlens_q[s] .. cu_seqlens_q[s + 1]` and keys likewise. They start at 0, never
///   decrease and end at most at `total_q` and `total_k`.
/// - `max_seqlen_q`: the most queries of one sequence (> 0 when `total_q` > 0); the CUDA grid is
///   sized from it.
/// - `lse`: `None`, or an F32 `[q_heads, total_q]` (any strides).
///
/// A CPU context checks the offsets on the host and refuses bad ones with
/// [`Status::InvalidValue`] before writing anything. A CUDA context does not read them on the
/// host: a sequence whose offsets break the rules gets NaN in the rows of `o` and `lse` they name
/// (within `total_q`), nothing out of bounds is read or written, and the other sequences are
/// computed as usual.
#[allow(clippy::too_many_arguments)]
pub fn attention_varlen(
    ctx: &Context,
    config: &AttentionConfig,
    q: &TensorRef<'_>,
    k: &TensorRef<'_>,
    v: &TensorRef<'_>,
    cu_seqlens_q: &TensorRef<'_>,
    cu_seqlens_k: &TensorRef<'_>,
    max_seqlen_q: usize,
    o: &mut TensorMut<'_>,
    lse: Option<&mut TensorMut<'_>>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "attention_varlen",
        &[
            ("q", q.memory()),
            ("k", k.memory()),
            ("v", v.memory()),
            ("cu_seqlens_q", cu_seqlens_q.memory()),
            ("cu_seqlens_k", cu_seqlens_k.memory()),
            ("o", o.memory()),
            (
                "lse",
                lse.as_deref().map_or(Memory::Unchecked, TensorMut::memory),
            ),
        ],
    )?;
    let max_seqlen_q = i64::try_from(max_seqlen_q).map_err(|_| {
        Error::new(
            Status::InvalidValue,
            format!("attention_varlen: max_seqlen_q {max_seqlen_q} is more than an int64_t holds"),
        )
    })?;
    let config = config.to_raw()?;
    // SAFETY: as in attention; the offsets are read by the CPU backend only after it has checked
    // their view, and a CUDA kernel keeps every access within the tensors whatever they hold.
    check(unsafe {
        sys::llmk_attention_varlen(
            ctx.as_raw(),
            &config,
            q.as_raw(),
            k.as_raw(),
            v.as_raw(),
            cu_seqlens_q.as_raw(),
            cu_seqlens_k.as_raw(),
            max_seqlen_q,
            o.as_raw(),
            raw_mut_or_null(lse),
            stream.as_raw(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_library() {
        let config = AttentionConfig::default();
        assert_eq!(
            (config.scale, config.softcap, config.dropout_p),
            (0.0, 0.0, 0.0)
        );
        assert!(!config.causal);
        assert_eq!((config.window_left, config.window_right), (None, None));
        assert_eq!((config.dropout_offset, config.dropout_seed), (0, 0));
        assert_eq!(config.kernel, AttentionKernel::Auto);
        let raw = config.to_raw().unwrap();
        assert_eq!(
            raw.struct_size,
            std::mem::size_of::<sys::llmk_attention_config>()
        );
        assert_eq!((raw.window_left, raw.window_right, raw.causal), (-1, -1, 0));
        assert_eq!(raw.kernel, 0);
    }

    #[test]
    fn fields_reach_the_c_struct() {
        let mut config = AttentionConfig {
            scale: 0.125,
            causal: true,
            window_left: Some(4096),
            window_right: Some(0),
            softcap: 50.0,
            dropout_p: 0.1,
            dropout_offset: u32::MAX,
            dropout_seed: u64::MAX,
            kernel: AttentionKernel::Hopper,
        };
        let raw = config.to_raw().unwrap();
        assert_eq!((raw.scale, raw.softcap, raw.dropout_p), (0.125, 50.0, 0.1));
        assert_eq!(
            (raw.causal, raw.window_left, raw.window_right),
            (1, 4096, 0)
        );
        assert_eq!((raw.dropout_offset, raw.dropout_seed), (u32::MAX, u64::MAX));
        assert_eq!(raw.kernel, 2);
        config.kernel = AttentionKernel::Portable;
        assert_eq!(config.to_raw().unwrap().kernel, 1);
        assert_eq!(
            AttentionKernel::from_field(1),
            Some(AttentionKernel::Portable)
        );
        assert_eq!(
            AttentionKernel::from_field(2),
            Some(AttentionKernel::Hopper)
        );
        assert_eq!(AttentionKernel::from_field(-1), None);
        assert_eq!(AttentionKernel::from_field(3), None);

        config.window_right = Some(1 << 31);
        let error = config.to_raw().unwrap_err();
        assert_eq!(error.status(), Status::InvalidValue);
        assert!(error.message().contains("window_right"), "{error}");
    }
}
