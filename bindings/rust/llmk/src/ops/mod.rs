//! The ops, one module per family, and what their wrappers share.
//!
//! Every op takes its [`Context`] first and its [`Stream`](crate::Stream) last. On a CPU context an op runs to
//! completion and `stream` is ignored; on a CUDA context it is launched on `stream` and returns at
//! once (see [`Context::synchronize`]). Inputs are [`TensorRef`]s, outputs (and tensors updated
//! in place) [`TensorMut`]s, an optional tensor an `Option`, scratch memory a
//! [`Workspace`](crate::Workspace); a refused call returns the library's status and message and
//! leaves every output untouched.

mod activation;
mod adamw;
mod attention;
mod embedding;
mod kv_cache;
mod matmul;
mod mlp;
mod norm;
mod rope;

pub use activation::{
    Activation, bias_activation, bias_activation_in_place, gated_activation,
    gated_activation_in_place,
};
pub use adamw::{AdamWConfig, adamw_step};
pub use attention::{AttentionConfig, AttentionKernel, attention, attention_varlen};
pub use embedding::embedding;
pub use kv_cache::{kv_cache_write, paged_kv_cache_write};
pub use matmul::{
    MatmulCacheStats, MatmulConfig, MatmulPath, MatmulTuning, matmul, matmul_cache_stats,
    matmul_in_place, matmul_path_for, matmul_tune, matmul_tune_in_place,
};
pub use mlp::{MlpConfig, ffn, ffn_workspace_size, gated_mlp, gated_mlp_workspace_size};
pub use norm::{
    add_rms_norm, add_rms_norm_in_place, layer_norm, layer_norm_in_place, rms_norm,
    rms_norm_in_place,
};
pub use rope::{RopeConfig, RopeStyle, rope};

use crate::context::{Backend, Context};
use crate::error::{Error, Result, Status};
use crate::sys;
use crate::tensor::{Memory, TensorMut, TensorRef};

/// The `llmk_tensor` pointer of an optional input: NULL when absent.
fn raw_or_null(tensor: Option<&TensorRef<'_>>) -> *const sys::llmk_tensor {
    tensor.map_or(std::ptr::null(), |tensor| tensor.as_raw())
}

/// The `llmk_tensor` pointer of an optional output: NULL when absent.
fn raw_mut_or_null(tensor: Option<&mut TensorMut<'_>>) -> *const sys::llmk_tensor {
    tensor.map_or(std::ptr::null(), |tensor| tensor.as_raw())
}

/// Refuses views whose memory is in the other space than the context's: the CPU backend would
/// dereference device pointers, and a CUDA kernel could still read a host slice after its borrow
/// ends. (For host memory the CUDA backend would refuse it too, where the runtime can tell.)
fn check_memory(ctx: &Context, op: &str, views: &[(&str, Memory)]) -> Result<()> {
    for &(name, memory) in views {
        let misplaced = match (ctx.backend(), memory) {
            (Backend::Cpu, Memory::Cuda) => "CUDA device memory, but the context is on the CPU",
            (Backend::Cuda, Memory::Host) => {
                "host memory, but the context is on a CUDA device; copy it into a DeviceBuffer"
            }
            _ => continue,
        };
        return Err(Error::new(
            Status::WrongMemorySpace,
            format!("{op}: {name} is {misplaced}"),
        ));
    }
    Ok(())
}

/// The memory of an optional view; an absent one has nothing to check.
fn memory_of(tensor: Option<&TensorRef<'_>>) -> Memory {
    tensor.map_or(Memory::Unchecked, TensorRef::memory)
}
