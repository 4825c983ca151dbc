//! Refused calls of the activation, RoPE, embedding, KV-cache and AdamW ops, on the CPU context:
//! for each op a NULL data pointer, a dtype mismatch, a shape mismatch and a negative stride, an
//! index out of range where the op takes indices, and bad config values. Each refusal must carry
//! the right status and a message that starts with the op's name and names the argument at
//! fault, and must leave every tensor the op writes untouched.
//!
//! Each op's test first makes the valid call its faults start from, so that a refusal is due to
//! the fault alone. (Enum arguments cannot be out of range here: `Activation` and `RopeStyle`
//! are Rust enums.)

use std::ffi::c_void;
use std::ptr;

use llmk::{
    Activation, AdamWConfig, Bf16, Context, DType, Element, RopeConfig, RopeStyle, Status, Stream,
    TensorMut, TensorRef,
};

const S: Stream = Stream::DEFAULT;
/// What the tensors an op writes hold before a call.
const SENTINEL: f32 = 7.0;

/// How a test breaks one tensor of an otherwise valid call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// The data pointer is NULL.
    NullData,
    /// The f32 memory viewed as bf16 (it holds twice as many): another dtype than the op wants.
    Bf16,
    /// The last extent one smaller than the op wants.
    Shorter,
    /// The first dimension walked backwards: a negative stride.
    NegativeStride,
}

/// The raw parts of a contiguous view of `data` with `shape`, broken by `fault`.
fn parts<T: Element>(
    data: *const T,
    shape: &[usize],
    fault: Fault,
) -> (*mut c_void, DType, Vec<i64>, Vec<i64>) {
    let mut shape: Vec<i64> = shape.iter().map(|&n| n as i64).collect();
    let mut strides = vec![1i64; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let mut data = data.cast::<c_void>().cast_mut();
    let mut dtype = T::DTYPE;
    match fault {
        Fault::None => {}
        Fault::NullData => data = ptr::null_mut(),
        Fault::Bf16 => {
            assert_eq!(dtype, DType::F32, "only f32 memory can be viewed as bf16");
            dtype = DType::Bf16;
        }
        Fault::Shorter => *shape.last_mut().expect("a dimension") -= 1,
        Fault::NegativeStride => {
            // The same elements, rows in reverse: start at the last row, step back.
            let last_row = (shape[0] - 1) * strides[0];
            data = data.cast::<T>().wrapping_add(last_row as usize).cast();
            strides[0] = -strides[0];
        }
    }
    (data, dtype, shape, strides)
}

/// A view of `data` for an op to read, broken by `fault` when `name` is the argument at fault.
fn input<'a, T: Element>(
    data: &'a [T],
    shape: &[usize],
    name: &str,
    faulty: (&str, Fault),
) -> TensorRef<'a> {
    let fault = if name == faulty.0 {
        faulty.1
    } else {
        Fault::None
    };
    let (data, dtype, shape, strides) = parts(data.as_ptr(), shape, fault);
    // SAFETY: every element of the view lies within `data` (a bf16 view of f32 memory covers
    // half of it, a shorter one less, a reversed one the same elements), which outlives the view;
    // the library refuses a NULL pointer before reading anything.
    unsafe { TensorRef::from_raw_parts(data, dtype, &shape, &strides) }.expect("a valid view")
}

/// A view of `data` for an op to write, broken as in [`input`].
fn output<'a, T: Element>(
    data: &'a mut [T],
    shape: &[usize],
    name: &str,
    faulty: (&str, Fault),
) -> TensorMut<'a> {
    let fault = if name == faulty.0 {
        faulty.1
    } else {
        Fault::None
    };
    let (data, dtype, shape, strides) = parts(data.as_mut_ptr(), shape, fault);
    // SAFETY: as in `input`, with `data` borrowed exclusively for the view's life.
    unsafe { TensorMut::from_raw_parts(data, dtype, &shape, &strides) }.expect("a valid view")
}

/// 0.5, 1.5, 2.5, ...: values every op takes.
fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 + 0.5).collect()
}

fn sentinels(n: usize) -> Vec<f32> {
    vec![SENTINEL; n]
}

fn untouched(outputs: &[&[f32]]) -> bool {
    outputs
        .iter()
        .all(|output| output.iter().all(|&v| v == SENTINEL))
}

/// Whether `message` has `word` as a whole word (not inside a longer name).
fn names(message: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    message.match_indices(word).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// What one call did: its result, and whether the tensors it may write still hold SENTINEL.
struct Called {
    result: llmk::Result<()>,
    untouched: bool,
}

/// Checks that `call(arg, fault)` is refused with `status`, a message of `op` naming `arg`, and
/// its outputs untouched, for each `(arg, fault, status)`; and first that the valid call works.
fn check_faults(
    op: &str,
    faults: &[(&str, Fault, Status)],
    call: impl Fn((&str, Fault)) -> Called,
) {
    let valid = call(("", Fault::None));
    if let Err(error) = valid.result {
        panic!("{op}: the valid call failed: {error}");
    }
    assert!(!valid.untouched, "{op}: the valid call wrote nothing");
    for &(arg, fault, status) in faults {
        let called = call((arg, fault));
        let error = called.result.expect_err(&format!(
            "{op} with {fault:?} {arg} should have been refused"
        ));
        let what = format!("{op} with {fault:?} {arg}: {error}");
        assert_eq!(error.status(), status, "{what}");
        assert!(error.message().starts_with(&format!("{op}: ")), "{what}");
        assert!(
            names(error.message(), arg),
            "{what}: the message does not name {arg}"
        );
        assert!(called.untouched, "{what}: a refused call wrote its output");
    }
}

/// The four faults every op is tested with, each on the given argument.
fn standard_faults<'a>(
    null: &'a str,
    dtype: &'a str,
    shape: &'a str,
    stride: &'a str,
) -> Vec<(&'a str, Fault, Status)> {
    vec![
        (null, Fault::NullData, Status::NullPointer),
        (dtype, Fault::Bf16, Status::DtypeMismatch),
        (shape, Fault::Shorter, Status::ShapeMismatch),
        (stride, Fault::NegativeStride, Status::InvalidStride),
    ]
}

fn cpu() -> Context {
    Context::cpu().expect("CPU context")
}

#[test]
fn bias_activation_faults() {
    let ctx = cpu();
    let (x, bias) = (values(8), values(4));
    check_faults(
        "bias_activation",
        &standard_faults("x", "bias", "bias", "x"),
        |faulty| {
            let mut y = sentinels(8);
            let result = llmk::bias_activation(
                &ctx,
                &input(&x, &[2, 4], "x", faulty),
                Some(&input(&bias, &[4], "bias", faulty)),
                Activation::Gelu,
                &mut output(&mut y, &[2, 4], "y", faulty),
                S,
            );
            Called {
                result,
                untouched: untouched(&[&y]),
            }
        },
    );
}

#[test]
fn gated_activation_faults() {
    let ctx = cpu();
    let (gate, up) = (values(8), values(8));
    check_faults(
        "gated_activation",
        &standard_faults("up", "up", "up", "gate"),
        |faulty| {
            let mut y = sentinels(8);
            let result = llmk::gated_activation(
                &ctx,
                &input(&gate, &[2, 4], "gate", faulty),
                &input(&up, &[2, 4], "up", faulty),
                Activation::Silu,
                &mut output(&mut y, &[2, 4], "y", faulty),
                S,
            );
            Called {
                result,
                untouched: untouched(&[&y]),
            }
        },
    );
}

/// RoPE on 2 tokens of 2 query heads and 1 key head of 4 dimensions, with a cos/sin cache of 4
/// positions when `cached`.
fn rope_call(
    ctx: &Context,
    config: &RopeConfig,
    positions: &[i32],
    cached: bool,
    faulty: (&str, Fault),
) -> Called {
    let cache = values(4 * 4);
    let (mut q, mut k) = (sentinels(2 * 2 * 4), sentinels(2 * 4));
    let cache_view = cached.then(|| input(&cache, &[4, 4], "cos_sin_cache", faulty));
    let result = llmk::rope(
        ctx,
        config,
        &input(positions, &[2], "positions", faulty),
        &mut output(&mut q, &[2, 2, 4], "q", faulty),
        Some(&mut output(&mut k, &[2, 1, 4], "k", faulty)),
        cache_view.as_ref(),
        S,
    );
    Called {
        result,
        untouched: untouched(&[&q, &k]),
    }
}

#[test]
fn rope_faults() {
    let ctx = cpu();
    let config = RopeConfig::default();
    check_faults(
        "rope",
        &standard_faults("positions", "k", "k", "q"),
        |faulty| rope_call(&ctx, &config, &[0, 3], false, faulty),
    );
}

#[test]
fn rope_position_beyond_the_cache() {
    let ctx = cpu();
    let config = RopeConfig::default();
    let none = ("", Fault::None);
    // The cache holds positions 0 to 3.
    let valid = rope_call(&ctx, &config, &[0, 3], true, none);
    valid.result.expect("positions within the cache");
    for bad in [4, -1] {
        let called = rope_call(&ctx, &config, &[0, bad], true, none);
        let error = called
            .result
            .expect_err(&format!("position {bad} of a cache of 4"));
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(error.message().starts_with("rope: "), "{error}");
        assert!(names(error.message(), "positions"), "{error}");
        assert!(called.untouched, "a refused call rotated q or k");
    }
}

#[test]
fn rope_config_values_are_checked() {
    let ctx = cpu();
    let mut odd = RopeConfig::default();
    odd.rotary_dim = 3;
    let mut too_wide = RopeConfig::default();
    too_wide.rotary_dim = 6;
    too_wide.style = RopeStyle::Gptj;
    for (config, field) in [(odd, "rotary_dim"), (too_wide, "rotary_dim")] {
        let called = rope_call(&ctx, &config, &[0, 3], false, ("", Fault::None));
        let error = called.result.expect_err(&format!("{config:?}"));
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(names(error.message(), field), "{error}");
        assert!(called.untouched, "a refused call rotated q or k");
    }
}

/// An embedding of 3 tokens from a table of 5 rows of 4.
fn embedding_call(ctx: &Context, ids: &[i32], faulty: (&str, Fault)) -> Called {
    let table = values(5 * 4);
    let mut y = sentinels(3 * 4);
    let result = llmk::embedding(
        ctx,
        &input(ids, &[3], "ids", faulty),
        &input(&table, &[5, 4], "table", faulty),
        &mut output(&mut y, &[3, 4], "y", faulty),
        S,
    );
    Called {
        result,
        untouched: untouched(&[&y]),
    }
}

#[test]
fn embedding_faults() {
    let ctx = cpu();
    check_faults(
        "embedding",
        &standard_faults("table", "y", "y", "table"),
        |faulty| embedding_call(&ctx, &[4, 0, 2], faulty),
    );
}

#[test]
fn embedding_id_out_of_range() {
    let ctx = cpu();
    for bad in [5, -1] {
        let called = embedding_call(&ctx, &[4, bad, 2], ("", Fault::None));
        let error = called
            .result
            .expect_err(&format!("id {bad} of a vocabulary of 5"));
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(error.message().starts_with("embedding: "), "{error}");
        assert!(
            names(error.message(), "ids") || error.message().contains("token"),
            "{error}"
        );
        assert!(called.untouched, "a refused call wrote y");
    }
}

/// Appends 1 token to each of 2 sequences of contiguous caches of 3 positions, 1 head of 4.
fn kv_cache_call(ctx: &Context, seqlens: &[i32], faulty: (&str, Fault)) -> Called {
    let (k, v) = (values(2 * 4), values(2 * 4));
    let (mut k_cache, mut v_cache) = (sentinels(2 * 3 * 4), sentinels(2 * 3 * 4));
    let result = llmk::kv_cache_write(
        ctx,
        &input(&k, &[2, 1, 1, 4], "k", faulty),
        &input(&v, &[2, 1, 1, 4], "v", faulty),
        &input(seqlens, &[2], "cache_seqlens", faulty),
        &mut output(&mut k_cache, &[2, 3, 1, 4], "k_cache", faulty),
        &mut output(&mut v_cache, &[2, 3, 1, 4], "v_cache", faulty),
        S,
    );
    Called {
        result,
        untouched: untouched(&[&k_cache, &v_cache]),
    }
}

#[test]
fn kv_cache_write_faults() {
    let ctx = cpu();
    let faults = standard_faults("v", "v_cache", "k_cache", "k");
    check_faults("kv_cache_write", &faults, |faulty| {
        kv_cache_call(&ctx, &[0, 2], faulty)
    });
}

#[test]
fn kv_cache_write_position_out_of_range() {
    let ctx = cpu();
    // Position 3 of a cache of 3, or before its start.
    for bad in [3, -1] {
        let called = kv_cache_call(&ctx, &[0, bad], ("", Fault::None));
        let error = called.result.expect_err(&format!("cache_seqlens {bad}"));
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(error.message().starts_with("kv_cache_write: "), "{error}");
        assert!(names(error.message(), "cache_seqlens"), "{error}");
        assert!(called.untouched, "a refused call wrote a cache");
    }
}

/// Stores 3 tokens of 1 head of 4 into paged caches of 2 pages of 2 slots.
fn paged_call(ctx: &Context, slots: &[i64], faulty: (&str, Fault)) -> Called {
    let (k, v) = (values(3 * 4), values(3 * 4));
    let (mut k_cache, mut v_cache) = (sentinels(2 * 2 * 4), sentinels(2 * 2 * 4));
    let result = llmk::paged_kv_cache_write(
        ctx,
        &input(&k, &[3, 1, 4], "k", faulty),
        &input(&v, &[3, 1, 4], "v", faulty),
        &input(slots, &[3], "slot_mapping", faulty),
        &mut output(&mut k_cache, &[2, 2, 1, 4], "k_cache", faulty),
        &mut output(&mut v_cache, &[2, 2, 1, 4], "v_cache", faulty),
        S,
    );
    Called {
        result,
        untouched: untouched(&[&k_cache, &v_cache]),
    }
}

#[test]
fn paged_kv_cache_write_faults() {
    let ctx = cpu();
    let faults = standard_faults("slot_mapping", "k", "v", "v_cache");
    check_faults("paged_kv_cache_write", &faults, |faulty| {
        paged_call(&ctx, &[3, -1, 0], faulty)
    });
}

#[test]
fn paged_kv_cache_write_slot_out_of_range() {
    let ctx = cpu();
    // Slot 4 of 2 pages of 2.
    let called = paged_call(&ctx, &[3, 4, 0], ("", Fault::None));
    let error = called.result.expect_err("slot 4 of 4 slots");
    assert_eq!(error.status(), Status::InvalidValue, "{error}");
    assert!(
        error.message().starts_with("paged_kv_cache_write: "),
        "{error}"
    );
    assert!(names(error.message(), "slot_mapping"), "{error}");
    assert!(called.untouched, "a refused call wrote a cache");
}

#[test]
fn paged_kv_cache_write_skips_negative_slots() {
    let ctx = cpu();
    let none = ("", Fault::None);
    let (k, v) = (values(3 * 4), values(3 * 4));
    let (mut k_cache, mut v_cache) = (sentinels(16), sentinels(16));
    llmk::paged_kv_cache_write(
        &ctx,
        &input(&k, &[3, 1, 4], "k", none),
        &input(&v, &[3, 1, 4], "v", none),
        &input(&[-1i64, -5, 2], &[3], "slot_mapping", none),
        &mut output(&mut k_cache, &[2, 2, 1, 4], "k_cache", none),
        &mut output(&mut v_cache, &[2, 2, 1, 4], "v_cache", none),
        S,
    )
    .expect("negative slots are padding");
    // Only token 2 is stored, in slot 2: page 1, offset 0.
    for (cache, new) in [(&k_cache, &k), (&v_cache, &v)] {
        assert_eq!(cache[8..12], new[8..12]);
        assert!(
            cache[..8]
                .iter()
                .chain(&cache[12..])
                .all(|&x| x == SENTINEL)
        );
    }
}

/// One AdamW step on [2, 4] tensors.
fn adamw_call(ctx: &Context, config: &AdamWConfig, faulty: (&str, Fault)) -> Called {
    let grad = values(8);
    let (mut param, mut exp_avg, mut exp_avg_sq) = (sentinels(8), sentinels(8), sentinels(8));
    let result = llmk::adamw_step(
        ctx,
        config,
        &mut output(&mut param, &[2, 4], "param", faulty),
        &input(&grad, &[2, 4], "grad", faulty),
        &mut output(&mut exp_avg, &[2, 4], "exp_avg", faulty),
        &mut output(&mut exp_avg_sq, &[2, 4], "exp_avg_sq", faulty),
        S,
    );
    Called {
        result,
        untouched: untouched(&[&param, &exp_avg, &exp_avg_sq]),
    }
}

#[test]
fn adamw_step_faults() {
    let ctx = cpu();
    let config = AdamWConfig::default();
    let faults = [
        ("grad", Fault::NullData, Status::NullPointer),
        // The optimizer state is f32 whatever the gradient's dtype.
        ("exp_avg", Fault::Bf16, Status::UnsupportedDtype),
        ("exp_avg_sq", Fault::Shorter, Status::ShapeMismatch),
        ("param", Fault::NegativeStride, Status::InvalidStride),
    ];
    check_faults("adamw_step", &faults, |faulty| {
        adamw_call(&ctx, &config, faulty)
    });
}

#[test]
fn adamw_step_takes_a_bf16_gradient() {
    let ctx = cpu();
    let grad: Vec<Bf16> = values(8).into_iter().map(Bf16::from_f32).collect();
    let (mut param, mut exp_avg, mut exp_avg_sq) = (sentinels(8), vec![0.0; 8], vec![0.0; 8]);
    llmk::adamw_step(
        &ctx,
        &AdamWConfig::default(),
        &mut TensorMut::contiguous(&mut param, &[8]).unwrap(),
        &TensorRef::contiguous(&grad, &[8]).unwrap(),
        &mut TensorMut::contiguous(&mut exp_avg, &[8]).unwrap(),
        &mut TensorMut::contiguous(&mut exp_avg_sq, &[8]).unwrap(),
        S,
    )
    .unwrap();
    // The first step moves each parameter by about lr against its gradient's sign, after the
    // decay: 7 * (1 - 1e-3 * 1e-2) - 1e-3.
    for &p in &param {
        assert!((p - (7.0 * (1.0 - 1e-5) - 1e-3)).abs() < 1e-5, "{param:?}");
    }
}

#[test]
fn adamw_config_values_are_checked() {
    let ctx = cpu();
    let mut configs = Vec::new();
    let mut bad = AdamWConfig::default();
    bad.lr = -1.0;
    configs.push((bad, "lr"));
    let mut bad = AdamWConfig::default();
    bad.beta1 = 1.0;
    configs.push((bad, "beta1"));
    let mut bad = AdamWConfig::default();
    bad.beta2 = f64::NAN;
    configs.push((bad, "beta2"));
    let mut bad = AdamWConfig::default();
    bad.eps = 0.0;
    configs.push((bad, "eps"));
    let mut bad = AdamWConfig::default();
    bad.step = 0;
    configs.push((bad, "step"));
    for (config, field) in configs {
        let called = adamw_call(&ctx, &config, ("", Fault::None));
        let error = called.result.expect_err(&format!("{config:?}"));
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(error.message().starts_with("adamw_step: "), "{error}");
        assert!(
            names(error.message(), field),
            "{error} does not name {field}"
        );
        assert!(called.untouched, "a refused call wrote the optimizer state");
    }
}
