//! Token embedding lookup: [`embedding`].

use super::check_memory;
use crate::context::{Context, Stream};
use crate::error::{Result, check};
use crate::sys;
use crate::tensor::{TensorMut, TensorRef};

/// `y[t] = table[ids[t]]`: the rows of an embedding table gathered by token id.
///
/// `ids`: `[tokens]`, I32 or I64, any stride. `table`: `[vocab, hidden]`; `y`:
/// `[tokens, hidden]`; one dtype, F32, F16 or BF16; last dimension contiguous, row strides free;
/// `y` overlaps neither input. An id outside `[0, vocab)`: the CPU backend refuses the call with
/// [`Status::InvalidValue`](crate::Status::InvalidValue), naming the token, before writing
/// anything; on CUDA, whose kernels do not report, that token's row of `y` is filled with NaN.
pub fn embedding(
    ctx: &Context,
    ids: &TensorRef<'_>,
    table: &TensorRef<'_>,
    y: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "embedding",
        &[
            ("ids", ids.memory()),
            ("table", table.memory()),
            ("y", y.memory()),
        ],
    )?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract.
    check(unsafe {
        sys::llmk_embedding(
            ctx.as_raw(),
            ids.as_raw(),
            table.as_raw(),
            y.as_raw(),
            stream.as_raw(),
        )
    })
}
