//! The AdamW optimizer step: [`adamw_step`], configured by an [`AdamWConfig`].

use std::mem::MaybeUninit;

use super::check_memory;
use crate::context::{Context, Stream};
use crate::error::{Error, Result, Status, check};
use crate::sys;
use crate::tensor::{TensorMut, TensorRef};

/// AdamW's hyperparameters (`llmk_adamw_config`). [`AdamWConfig::default`] holds the library's
/// defaults (`llmk_adamw_config_init`: `torch.optim.AdamW`'s, step 1); change the fields that
/// differ, and count `step` up from 1 with each update:
///
/// ```
/// let mut config = llmk::AdamWConfig::default();
/// config.lr = 3e-4;
/// config.weight_decay = 0.1;
/// assert_eq!((config.beta1, config.beta2, config.step), (0.9, 0.999, 1));
/// ```
///
/// The library validates the values when [`adamw_step`] is called.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct AdamWConfig {
    /// The learning rate, >= 0. Default 1e-3.
    pub lr: f64,
    /// The decay of the first moment, in `[0, 1)`. Default 0.9.
    pub beta1: f64,
    /// The decay of the second moment, in `[0, 1)`. Default 0.999.
    pub beta2: f64,
    /// Added to the denominator, > 0. Default 1e-8.
    pub eps: f64,
    /// The decoupled weight decay, >= 0. Default 1e-2.
    pub weight_decay: f64,
    /// This update's number, counted from 1 (the default); bias correction depends on it.
    pub step: u64,
}

impl Default for AdamWConfig {
    /// The library's defaults, from `llmk_adamw_config_init`.
    fn default() -> Self {
        let raw = init_raw();
        Self {
            lr: raw.lr,
            beta1: raw.beta1,
            beta2: raw.beta2,
            eps: raw.eps,
            weight_decay: raw.weight_decay,
            // Never negative from the library: its default is 1.
            step: raw.step as u64,
        }
    }
}

impl AdamWConfig {
    /// The `llmk_adamw_config` to pass: `llmk_adamw_config_init`'s, so that `struct_size` and
    /// any field this crate does not know keep the library's values, overwritten by these fields.
    pub fn to_raw(&self) -> Result<sys::llmk_adamw_config> {
        let step = i64::try_from(self.step).map_err(|_| {
            Error::new(
                Status::InvalidValue,
                format!(
                    "adamw_step: step {} is more than an int64_t holds",
                    self.step
                ),
            )
        })?;
        Ok(sys::llmk_adamw_config {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            step,
            ..init_raw()
        })
    }
}

fn init_raw() -> sys::llmk_adamw_config {
    let mut raw = MaybeUninit::<sys::llmk_adamw_config>::uninit();
    // SAFETY: llmk_adamw_config_init fills every field of the struct it is given.
    unsafe {
        sys::llmk_adamw_config_init(raw.as_mut_ptr());
        raw.assume_init()
    }
}

/// One AdamW step (decoupled weight decay), in place and elementwise, as `torch.optim.AdamW`:
///
/// ```text
/// param      = param * (1 - lr * weight_decay)
/// exp_avg    = beta1 * exp_avg + (1 - beta1) * grad
/// exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad²
/// param      = param - lr / (1 - beta1^step)
///                      * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)
/// ```
///
/// `param`, `exp_avg` and `exp_avg_sq` are F32; `grad` is F32, F16 or BF16. All four have one
/// shape `[..., n]`, last dimension contiguous, leading dimensions with any strides (merging
/// into at most 3); `param`, `exp_avg` and `exp_avg_sq` overlap nothing.
pub fn adamw_step(
    ctx: &Context,
    config: &AdamWConfig,
    param: &mut TensorMut<'_>,
    grad: &TensorRef<'_>,
    exp_avg: &mut TensorMut<'_>,
    exp_avg_sq: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "adamw_step",
        &[
            ("param", param.memory()),
            ("grad", grad.memory()),
            ("exp_avg", exp_avg.memory()),
            ("exp_avg_sq", exp_avg_sq.memory()),
        ],
    )?;
    let config = config.to_raw()?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract.
    // The config outlives the call.
    check(unsafe {
        sys::llmk_adamw_step(
            ctx.as_raw(),
            &config,
            param.as_raw(),
            grad.as_raw(),
            exp_avg.as_raw(),
            exp_avg_sq.as_raw(),
            stream.as_raw(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_library() {
        let config = AdamWConfig::default();
        assert_eq!(
            (config.lr, config.beta1, config.beta2, config.eps),
            (1e-3, 0.9, 0.999, 1e-8)
        );
        assert_eq!((config.weight_decay, config.step), (1e-2, 1));
        let raw = config.to_raw().unwrap();
        assert_eq!(
            raw.struct_size,
            std::mem::size_of::<sys::llmk_adamw_config>()
        );
    }

    #[test]
    fn fields_reach_the_c_struct() {
        let mut config = AdamWConfig {
            lr: 0.5,
            step: 7,
            ..AdamWConfig::default()
        };
        let raw = config.to_raw().unwrap();
        assert_eq!((raw.lr, raw.step), (0.5, 7));
        config.step = u64::MAX;
        let error = config.to_raw().unwrap_err();
        assert_eq!(error.status(), Status::InvalidValue);
        assert!(error.message().contains("adamw_step: step"), "{error}");
    }
}
