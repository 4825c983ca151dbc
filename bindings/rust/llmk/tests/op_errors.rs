//! Refused calls of the activation, RoPE, embedding, KV-cache, AdamW, matmul (and matmul_tune),
//! MLP and attention ops, on the CPU context: for each op a NULL data pointer, a dtype mismatch, a
//! shape mismatch and a negative stride, an index out of range where the op takes indices (and
//! attention's sequence offsets), bad config values, layouts matmul and attention cannot take, and
//! workspaces too small, misaligned or missing. Each refusal must carry
//! the right status and a message that starts with the op's name and names the argument at
//! fault, and must leave every tensor the op writes untouched.
//!
//! Each op's test first makes the valid call its faults start from, so that a refusal is due to
//! the fault alone. (Enum arguments cannot be out of range here: `Activation` and `RopeStyle`
//! are Rust enums; an out-of-range attention kernel goes through `llmk::sys`.)

use std::ffi::{CStr, c_void};
use std::ptr;

use llmk::{
    Activation, AdamWConfig, AttentionConfig, AttentionKernel, Bf16, Context, DType, DeviceBuffer,
    Element, MatmulCacheStats, MatmulConfig, MatmulPath, MatmulTuning, MlpConfig, RopeConfig,
    RopeStyle, Status, Stream, TensorMut, TensorRef, Workspace,
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
    /// The bf16 memory viewed as f16: another 16-bit dtype than the op wants.
    F16,
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
        Fault::F16 => {
            assert_eq!(dtype, DType::Bf16, "only bf16 memory is viewed as f16");
            dtype = DType::F16;
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

/// `D = a(A B + beta C + bias)` with A [2, 3], B [3, 4] (a row-major [K, N] view), C, bias [4]
/// and D [2, 4].
fn matmul_call(ctx: &Context, config: &MatmulConfig, faulty: (&str, Fault)) -> Called {
    let (a, b, c, bias) = (values(2 * 3), values(3 * 4), values(2 * 4), values(4));
    let mut d = sentinels(2 * 4);
    let result = llmk::matmul(
        ctx,
        config,
        &input(&a, &[2, 3], "a", faulty),
        &input(&b, &[3, 4], "b", faulty),
        Some(&input(&c, &[2, 4], "c", faulty)),
        Some(&input(&bias, &[4], "bias", faulty)),
        &mut output(&mut d, &[2, 4], "d", faulty),
        S,
    );
    Called {
        result,
        untouched: untouched(&[&d]),
    }
}

/// What `matmul_path_for` says of [`matmul_call`]'s arguments.
fn matmul_path_call(
    ctx: &Context,
    config: &MatmulConfig,
    faulty: (&str, Fault),
) -> llmk::Result<MatmulPath> {
    let (a, b, c, bias, d) = (
        values(2 * 3),
        values(3 * 4),
        values(2 * 4),
        values(4),
        sentinels(2 * 4),
    );
    llmk::matmul_path_for(
        ctx,
        config,
        &input(&a, &[2, 3], "a", faulty),
        &input(&b, &[3, 4], "b", faulty),
        Some(&input(&c, &[2, 4], "c", faulty)),
        Some(&input(&bias, &[4], "bias", faulty)),
        &input(&d, &[2, 4], "d", faulty),
    )
}

fn matmul_faults() -> Vec<(&'static str, Fault, Status)> {
    vec![
        ("a", Fault::NullData, Status::NullPointer),
        ("b", Fault::Bf16, Status::DtypeMismatch),
        ("bias", Fault::Shorter, Status::ShapeMismatch),
        ("c", Fault::Shorter, Status::ShapeMismatch),
        ("d", Fault::NegativeStride, Status::InvalidStride),
    ]
}

#[test]
fn matmul_faults_are_refused() {
    let ctx = cpu();
    let mut config = MatmulConfig::default();
    config.beta = 0.5;
    config.activation = Activation::Silu;
    check_faults("matmul", &matmul_faults(), |faulty| {
        matmul_call(&ctx, &config, faulty)
    });
}

#[test]
fn matmul_path_for_checks_as_matmul_does() {
    let ctx = cpu();
    let mut config = MatmulConfig::default();
    config.beta = 0.5;
    let path = matmul_path_call(&ctx, &config, ("", Fault::None)).expect("the valid arguments");
    assert!(
        matches!(path, MatmulPath::CublasLt | MatmulPath::Gemv),
        "{path:?}"
    );
    for (arg, fault, status) in matmul_faults() {
        let error = matmul_path_call(&ctx, &config, (arg, fault))
            .expect_err(&format!("matmul_path_for with {fault:?} {arg}"));
        assert_eq!(error.status(), status, "{fault:?} {arg}: {error}");
        assert!(names(error.message(), arg), "{error} does not name {arg}");
    }
}

/// [`matmul_call`] through `matmul_tune`, which tunes nothing on the CPU.
fn matmul_tune_call(ctx: &Context, config: &MatmulConfig, faulty: (&str, Fault)) -> Called {
    let (a, b, c, bias) = (values(2 * 3), values(3 * 4), values(2 * 4), values(4));
    let mut d = sentinels(2 * 4);
    let result = llmk::matmul_tune(
        ctx,
        config,
        &input(&a, &[2, 3], "a", faulty),
        &input(&b, &[3, 4], "b", faulty),
        Some(&input(&c, &[2, 4], "c", faulty)),
        Some(&input(&bias, &[4], "bias", faulty)),
        &mut output(&mut d, &[2, 4], "d", faulty),
        S,
    );
    Called {
        result: result.map(|tuning| assert_eq!(tuning, MatmulTuning::default())),
        untouched: untouched(&[&d]),
    }
}

/// matmul_tune takes matmul's arguments and the library checks them as matmul's: each fault is
/// refused with matmul's very error (a message of "matmul: "), D untouched.
#[test]
fn matmul_tune_checks_as_matmul_does() {
    let ctx = cpu();
    let mut config = MatmulConfig::default();
    config.beta = 0.5;
    config.activation = Activation::Silu;
    check_faults("matmul", &matmul_faults(), |faulty| {
        matmul_tune_call(&ctx, &config, faulty)
    });
    for (arg, fault, _) in matmul_faults() {
        let tuned = matmul_tune_call(&ctx, &config, (arg, fault)).result;
        let plain = matmul_call(&ctx, &config, (arg, fault)).result;
        assert_eq!(tuned, plain, "{fault:?} {arg}");
    }
}

/// The in-place form too: a bias of the wrong length, and a bias with a column-major D (which
/// cuBLASLt cannot take), refused as matmul_in_place refuses them.
#[test]
fn matmul_tune_in_place_checks_as_matmul_in_place_does() {
    let ctx = cpu();
    let mut config = MatmulConfig::default();
    config.beta = 1.0;
    let (a, b, bias) = (values(2 * 3), values(3 * 4), values(4));
    let a = TensorRef::contiguous(&a, &[2, 3]).unwrap();
    let b = TensorRef::contiguous(&b, &[3, 4]).unwrap();
    for (bias_len, d_strides, status) in [
        (3, [4, 1], Status::ShapeMismatch),
        (4, [1, 2], Status::Unsupported),
    ] {
        let bias = TensorRef::contiguous(&bias[..bias_len], &[bias_len]).unwrap();
        let mut d = sentinels(2 * 4);
        let plain = llmk::matmul_in_place(
            &ctx,
            &config,
            &a,
            &b,
            Some(&bias),
            &mut TensorMut::new(&mut d, &[2, 4], &d_strides).unwrap(),
            S,
        );
        let tuned = llmk::matmul_tune_in_place(
            &ctx,
            &config,
            &a,
            &b,
            Some(&bias),
            &mut TensorMut::new(&mut d, &[2, 4], &d_strides).unwrap(),
            S,
        )
        .map(|tuning| assert_eq!(tuning, MatmulTuning::default()));
        assert_eq!(tuned, plain, "bias of {bias_len}, d strides {d_strides:?}");
        let called = Called {
            result: tuned,
            untouched: untouched(&[&d]),
        };
        assert_refused("matmul", called, status, "bias");
    }
}

/// A refused call of `op` with `status`, a message naming `arg`, and its outputs untouched.
fn assert_refused(op: &str, called: Called, status: Status, arg: &str) {
    let error = called.result.expect_err(&format!(
        "{op}: the call with a bad {arg} should have been refused"
    ));
    assert_eq!(error.status(), status, "{error}");
    assert!(error.message().starts_with(&format!("{op}: ")), "{error}");
    assert!(names(error.message(), arg), "{error} does not name {arg}");
    assert!(called.untouched, "{error}: a refused call wrote its output");
}

#[test]
fn matmul_layouts_are_checked() {
    let ctx = cpu();
    let config = MatmulConfig::default();
    let (a, b, bias) = (values(2 * 3), values(3 * 8), values(4));
    let a = TensorRef::contiguous(&a, &[2, 3]).unwrap();
    let mut d = sentinels(2 * 4);

    // B with no unit stride: [3, 4] taking every other column of a [3, 8] buffer.
    let b_gaps = TensorRef::new(&b, &[3, 4], &[8, 2]).unwrap();
    let result = llmk::matmul(
        &ctx,
        &config,
        &a,
        &b_gaps,
        None,
        None,
        &mut TensorMut::contiguous(&mut d, &[2, 4]).unwrap(),
        S,
    );
    let called = Called {
        result,
        untouched: untouched(&[&d]),
    };
    assert_refused("matmul", called, Status::NotContiguous, "b");

    // A bias with a column-major D, which cuBLASLt cannot take.
    let b_rows = TensorRef::contiguous(&b[..12], &[3, 4]).unwrap();
    let result = llmk::matmul(
        &ctx,
        &config,
        &a,
        &b_rows,
        None,
        Some(&TensorRef::contiguous(&bias, &[4]).unwrap()),
        &mut TensorMut::new(&mut d, &[2, 4], &[1, 2]).unwrap(),
        S,
    );
    let called = Called {
        result,
        untouched: untouched(&[&d]),
    };
    assert_refused("matmul", called, Status::Unsupported, "bias");

    // beta != 0 reads C, which is missing.
    let mut reads_c = MatmulConfig::default();
    reads_c.beta = 1.0;
    let result = llmk::matmul(
        &ctx,
        &reads_c,
        &a,
        &b_rows,
        None,
        None,
        &mut TensorMut::contiguous(&mut d, &[2, 4]).unwrap(),
        S,
    );
    let called = Called {
        result,
        untouched: untouched(&[&d]),
    };
    assert_refused("matmul", called, Status::NullPointer, "c");
}

#[test]
fn matmul_output_overlapping_an_input_is_refused() {
    let ctx = cpu();
    // A [2, 2] and D [2, 2] share one buffer: D is A's second row and one more.
    let mut shared = sentinels(6);
    let b = values(4);
    let base = shared.as_mut_ptr();
    // SAFETY: both views lie within `shared`, which outlives them; the library refuses the
    // overlap before touching either.
    let (a, mut d) = unsafe {
        (
            TensorRef::from_raw_parts(base.cast(), DType::F32, &[2, 2], &[2, 1]).unwrap(),
            TensorMut::from_raw_parts(base.add(2).cast(), DType::F32, &[2, 2], &[2, 1]).unwrap(),
        )
    };
    let result = llmk::matmul(
        &ctx,
        &MatmulConfig::default(),
        &a,
        &TensorRef::contiguous(&b, &[2, 2]).unwrap(),
        None,
        None,
        &mut d,
        S,
    );
    let called = Called {
        result,
        untouched: untouched(&[&shared]),
    };
    assert_refused("matmul", called, Status::Overlap, "d");
}

/// `y = x W^T` with nn.Linear's W [N, K] row-major: B is W's transposed view, [K, N] strides
/// [1, K]. Then the same in place, accumulating into D: `D = A B + D`.
#[test]
fn matmul_takes_a_transposed_weight_and_accumulates_in_place() {
    let ctx = cpu();
    let (m, k, n) = (3, 5, 2);
    let x: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.25 - 1.0).collect();
    let w: Vec<f32> = (0..n * k).map(|i| 1.0 - i as f32 * 0.125).collect();
    let expected: Vec<f32> = (0..m * n)
        .map(|i| {
            let (row, col) = (i / n, i % n);
            (0..k).map(|j| x[row * k + j] * w[col * k + j]).sum()
        })
        .collect();
    let mut y = sentinels(m * n);
    let a = TensorRef::contiguous(&x, &[m, k]).unwrap();
    let b = TensorRef::new(&w, &[k, n], &[1, k]).unwrap();
    llmk::matmul(
        &ctx,
        &MatmulConfig::default(),
        &a,
        &b,
        None,
        None,
        &mut TensorMut::contiguous(&mut y, &[m, n]).unwrap(),
        S,
    )
    .unwrap();
    for (got, want) in y.iter().zip(&expected) {
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{y:?} vs {expected:?}"
        );
    }

    let mut accumulate = MatmulConfig::default();
    accumulate.beta = 1.0;
    llmk::matmul_in_place(
        &ctx,
        &accumulate,
        &a,
        &b,
        None,
        &mut TensorMut::contiguous(&mut y, &[m, n]).unwrap(),
        S,
    )
    .unwrap();
    for (got, want) in y.iter().zip(&expected) {
        assert!(
            (got - 2.0 * want).abs() <= 1e-5 * want.abs().max(1.0),
            "{y:?}"
        );
    }
}

/// A decode-sized call on nn.Linear's layout can take the GEMV; asking for the GEMV where it
/// cannot run (a row-major B) is refused as matmul would refuse it.
#[test]
fn matmul_path_for_answers_the_engine() {
    let ctx = cpu();
    let (x, w, y) = (values(16), values(16 * 8), sentinels(8));
    let a = TensorRef::contiguous(&x, &[1, 16]).unwrap();
    let b_linear = TensorRef::new(&w, &[16, 8], &[1, 16]).unwrap();
    let b_rows = TensorRef::contiguous(&w, &[16, 8]).unwrap();
    let d = TensorRef::contiguous(&y, &[1, 8]).unwrap();
    let mut config = MatmulConfig::default();
    let path_for = |config: &MatmulConfig, b: &TensorRef<'_>| {
        llmk::matmul_path_for(&ctx, config, &a, b, None, None, &d)
    };

    let auto = path_for(&config, &b_linear).unwrap();
    assert!(
        matches!(auto, MatmulPath::CublasLt | MatmulPath::Gemv),
        "{auto:?}"
    );
    config.path = MatmulPath::CublasLt;
    assert_eq!(path_for(&config, &b_linear).unwrap(), MatmulPath::CublasLt);
    config.path = MatmulPath::Gemv;
    assert_eq!(path_for(&config, &b_linear).unwrap(), MatmulPath::Gemv);
    let error = path_for(&config, &b_rows).unwrap_err();
    assert_eq!(error.status(), Status::Unsupported, "{error}");

    // The CPU ignores the path: the refused GEMV still runs there.
    let mut out = sentinels(8);
    llmk::matmul(
        &ctx,
        &config,
        &a,
        &b_rows,
        None,
        None,
        &mut TensorMut::contiguous(&mut out, &[1, 8]).unwrap(),
        S,
    )
    .expect("the path is ignored on the CPU");
    assert_eq!(
        llmk::matmul_cache_stats(&ctx).unwrap(),
        MatmulCacheStats::default()
    );
}

/// Scratch memory from `llmk_malloc` on `ctx` (aligned to 256 bytes), `bytes` long.
fn scratch(ctx: &Context, bytes: usize) -> DeviceBuffer<'_, u8> {
    DeviceBuffer::from_slice(ctx, &vec![0u8; bytes], S).expect("workspace")
}

/// How a test breaks the workspace of an MLP call.
#[derive(Clone, Copy, Debug)]
enum Scratch {
    /// The size the library asks for.
    Enough,
    /// One byte less.
    Short,
    /// The size asked for, starting one byte into the allocation.
    Misaligned,
    /// NULL, 0 bytes.
    Missing,
}

/// Calls `op` with a workspace of `bytes` broken by `scratch`.
fn with_workspace<R>(
    ctx: &Context,
    bytes: usize,
    scratch_kind: Scratch,
    op: impl FnOnce(&mut Workspace<'_>) -> R,
) -> R {
    let mut memory = scratch(ctx, bytes + 1);
    let base = memory.as_mut_ptr();
    let (start, len) = match scratch_kind {
        Scratch::Enough => (0, bytes),
        Scratch::Short => (0, bytes - 1),
        Scratch::Misaligned => (1, bytes),
        Scratch::Missing => return op(&mut Workspace::host(&mut [])),
    };
    // SAFETY: the range lies within `memory`, host memory of the CPU context, which outlives the
    // workspace and is not otherwise accessed meanwhile.
    let mut workspace = unsafe { Workspace::from_raw_parts(base.add(start).cast(), len) };
    op(&mut workspace)
}

/// ffn on 2 tokens, d_model 4, d_ff 3, with both biases.
fn ffn_call(ctx: &Context, faulty: (&str, Fault), scratch_kind: Scratch) -> Called {
    let (x, w1, b1, w2, b2) = (values(8), values(12), values(3), values(12), values(4));
    let x_view = input(&x, &[2, 4], "x", faulty);
    let w1_view = input(&w1, &[3, 4], "w1", faulty);
    // Sized from the valid shapes: a fault must be found by the op, not the size query.
    let bytes = llmk::ffn_workspace_size(
        ctx,
        &TensorRef::contiguous(&x, &[2, 4]).unwrap(),
        &TensorRef::contiguous(&w1, &[3, 4]).unwrap(),
    )
    .expect("ffn_workspace_size");
    assert!(bytes > 0, "ffn needs a workspace for its intermediate");
    let mut y = sentinels(8);
    let result = with_workspace(ctx, bytes, scratch_kind, |workspace| {
        llmk::ffn(
            ctx,
            &MlpConfig::default(),
            &x_view,
            &w1_view,
            Some(&input(&b1, &[3], "b1", faulty)),
            &input(&w2, &[4, 3], "w2", faulty),
            Some(&input(&b2, &[4], "b2", faulty)),
            Activation::Gelu,
            workspace,
            &mut output(&mut y, &[2, 4], "y", faulty),
            S,
        )
    });
    Called {
        result,
        untouched: untouched(&[&y]),
    }
}

#[test]
fn ffn_faults() {
    let ctx = cpu();
    let faults = [
        ("x", Fault::NullData, Status::NullPointer),
        ("w2", Fault::Bf16, Status::DtypeMismatch),
        ("b1", Fault::Shorter, Status::ShapeMismatch),
        ("w1", Fault::Shorter, Status::ShapeMismatch),
        ("y", Fault::NegativeStride, Status::InvalidStride),
    ];
    check_faults("ffn", &faults, |faulty| {
        ffn_call(&ctx, faulty, Scratch::Enough)
    });
}

#[test]
fn ffn_workspace_is_checked() {
    let ctx = cpu();
    let none = ("", Fault::None);
    for (kind, status) in [
        (Scratch::Short, Status::InvalidValue),
        (Scratch::Misaligned, Status::Misaligned),
        (Scratch::Missing, Status::NullPointer),
    ] {
        let called = ffn_call(&ctx, none, kind);
        let what = format!("{kind:?}");
        let error = called.result.expect_err(&what);
        assert_eq!(error.status(), status, "{what}: {error}");
        assert!(error.message().starts_with("ffn: "), "{error}");
        // A short one is named by its size: "workspace_bytes is ...".
        let named =
            names(error.message(), "workspace") || names(error.message(), "workspace_bytes");
        assert!(named, "{error} does not name the workspace");
        assert!(called.untouched, "{what}: a refused call wrote y");
    }
}

/// gated_mlp on 2 tokens, d_model 4, d_ff 3.
fn gated_mlp_call(ctx: &Context, faulty: (&str, Fault), scratch_kind: Scratch) -> Called {
    let (x, w_gate, w_up, w_down) = (values(8), values(12), values(12), values(12));
    let bytes = llmk::gated_mlp_workspace_size(
        ctx,
        &TensorRef::contiguous(&x, &[2, 4]).unwrap(),
        &TensorRef::contiguous(&w_gate, &[3, 4]).unwrap(),
    )
    .expect("gated_mlp_workspace_size");
    let mut y = sentinels(8);
    let result = with_workspace(ctx, bytes, scratch_kind, |workspace| {
        llmk::gated_mlp(
            ctx,
            &MlpConfig::default(),
            &input(&x, &[2, 4], "x", faulty),
            &input(&w_gate, &[3, 4], "w_gate", faulty),
            &input(&w_up, &[3, 4], "w_up", faulty),
            &input(&w_down, &[4, 3], "w_down", faulty),
            Activation::Silu,
            workspace,
            &mut output(&mut y, &[2, 4], "y", faulty),
            S,
        )
    });
    Called {
        result,
        untouched: untouched(&[&y]),
    }
}

#[test]
fn gated_mlp_faults() {
    let ctx = cpu();
    let faults = [
        ("w_up", Fault::NullData, Status::NullPointer),
        ("w_gate", Fault::Bf16, Status::DtypeMismatch),
        ("w_down", Fault::Shorter, Status::ShapeMismatch),
        ("w_up", Fault::Shorter, Status::ShapeMismatch),
        ("x", Fault::NegativeStride, Status::InvalidStride),
    ];
    check_faults("gated_mlp", &faults, |faulty| {
        gated_mlp_call(&ctx, faulty, Scratch::Enough)
    });
}

#[test]
fn gated_mlp_workspace_is_checked() {
    let ctx = cpu();
    let none = ("", Fault::None);
    for (kind, status) in [
        (Scratch::Short, Status::InvalidValue),
        (Scratch::Misaligned, Status::Misaligned),
        (Scratch::Missing, Status::NullPointer),
    ] {
        let called = gated_mlp_call(&ctx, none, kind);
        let what = format!("{kind:?}");
        let error = called.result.expect_err(&what);
        assert_eq!(error.status(), status, "{what}: {error}");
        assert!(error.message().starts_with("gated_mlp: "), "{error}");
        // A short one is named by its size: "workspace_bytes is ...".
        let named =
            names(error.message(), "workspace") || names(error.message(), "workspace_bytes");
        assert!(named, "{error} does not name the workspace");
        assert!(called.untouched, "{what}: a refused call wrote y");
    }
}

/// vLLM's fused gate_up weight: w_gate and w_up as two views of one [2 d_ff, d_model] buffer give
/// what two separate weights give.
#[test]
fn gated_mlp_takes_a_fused_gate_up_weight() {
    let ctx = cpu();
    let (tokens, d_model, d_ff) = (3, 4, 5);
    let x: Vec<f32> = (0..tokens * d_model)
        .map(|i| (i as f32 - 5.0) * 0.1)
        .collect();
    let gate_up: Vec<f32> = (0..2 * d_ff * d_model)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.05)
        .collect();
    let w_down: Vec<f32> = (0..d_model * d_ff)
        .map(|i| ((i % 4) as f32 - 1.5) * 0.2)
        .collect();
    let (gate, up) = gate_up.split_at(d_ff * d_model);
    let x_view = TensorRef::contiguous(&x, &[tokens, d_model]).unwrap();
    let w_down_view = TensorRef::contiguous(&w_down, &[d_model, d_ff]).unwrap();
    let bytes = llmk::gated_mlp_workspace_size(
        &ctx,
        &x_view,
        &TensorRef::contiguous(gate, &[d_ff, d_model]).unwrap(),
    )
    .unwrap();
    let mut memory = scratch(&ctx, bytes);
    let mut run = |w_gate: &TensorRef<'_>, w_up: &TensorRef<'_>| {
        let mut y = sentinels(tokens * d_model);
        llmk::gated_mlp(
            &ctx,
            &MlpConfig::default(),
            &x_view,
            w_gate,
            w_up,
            &w_down_view,
            Activation::Silu,
            &mut Workspace::new(&mut memory),
            &mut TensorMut::contiguous(&mut y, &[tokens, d_model]).unwrap(),
            S,
        )
        .unwrap();
        y
    };
    // Two allocations of their own.
    let (gate_alone, up_alone) = (gate.to_vec(), up.to_vec());
    let separate = run(
        &TensorRef::contiguous(&gate_alone, &[d_ff, d_model]).unwrap(),
        &TensorRef::contiguous(&up_alone, &[d_ff, d_model]).unwrap(),
    );
    let fused = run(
        &TensorRef::contiguous(gate, &[d_ff, d_model]).unwrap(),
        &TensorRef::contiguous(up, &[d_ff, d_model]).unwrap(),
    );
    assert_eq!(separate, fused);

    // The reference: (silu(x Wg^T) * (x Wu^T)) Wd^T, in f64.
    let silu = |v: f64| v / (1.0 + (-v).exp());
    for t in 0..tokens {
        let h: Vec<f64> = (0..d_ff)
            .map(|f| {
                let dot = |w: &[f32]| -> f64 {
                    (0..d_model)
                        .map(|j| f64::from(x[t * d_model + j]) * f64::from(w[f * d_model + j]))
                        .sum()
                };
                silu(dot(gate)) * dot(up)
            })
            .collect();
        for o in 0..d_model {
            let want: f64 = (0..d_ff)
                .map(|f| h[f] * f64::from(w_down[o * d_ff + f]))
                .sum();
            let got = f64::from(fused[t * d_model + o]);
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "y[{t}, {o}] = {got}, want {want}"
            );
        }
    }
}

/// `len` bf16 elements whose first one lies on 16 bytes, as attention's views must: a window of a
/// larger vector (a `Vec<Bf16>` is only promised 2-byte alignment).
struct Aligned16 {
    storage: Vec<Bf16>,
    start: usize,
    len: usize,
}

impl Aligned16 {
    fn new(values: impl IntoIterator<Item = f32>) -> Self {
        let values: Vec<Bf16> = values.into_iter().map(Bf16::from_f32).collect();
        let len = values.len();
        let mut storage = vec![Bf16::from_f32(0.0); len + 8];
        let start = (0..8)
            .find(|&i| (storage.as_ptr().wrapping_add(i) as usize).is_multiple_of(16))
            .expect("a 16-byte boundary within 8 bf16 elements");
        storage[start..start + len].copy_from_slice(&values);
        Self {
            storage,
            start,
            len,
        }
    }

    fn get(&self) -> &[Bf16] {
        &self.storage[self.start..self.start + self.len]
    }

    fn get_mut(&mut self) -> &mut [Bf16] {
        &mut self.storage[self.start..self.start + self.len]
    }

    /// The same elements starting one further: 2 bytes past 16-byte alignment.
    fn shifted(&self) -> &[Bf16] {
        &self.storage[self.start + 1..self.start + 1 + self.len]
    }

    fn untouched(&self) -> bool {
        self.get().iter().all(|v| v.to_f32() == SENTINEL)
    }
}

/// Values exact in bf16, small enough for a softmax: -0.75 to 0.75 in steps of 0.25.
fn small_values(n: usize, seed: usize) -> impl Iterator<Item = f32> {
    (0..n).map(move |i| ((i * 7 + seed * 3) % 7) as f32 * 0.25 - 0.75)
}

/// Attention's sizes in these tests: 2 sequences of 3 queries over 5 keys, 4 query heads over 2
/// kv heads (GQA), head_dim 64.
const A_BATCH: usize = 2;
const Q_LEN: usize = 3;
const KV_LEN: usize = 5;
const Q_HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;

/// Padded attention over bf16 q, k, v and o (SENTINEL) with an f32 lse (SENTINEL), `head_dim`
/// wide; `misaligned_q` starts q 2 bytes past 16-byte alignment.
fn attention_call(
    ctx: &Context,
    config: &AttentionConfig,
    faulty: (&str, Fault),
    head_dim: usize,
    misaligned_q: bool,
) -> Called {
    let q_shape = [A_BATCH, Q_LEN, Q_HEADS, head_dim];
    let kv_shape = [A_BATCH, KV_LEN, KV_HEADS, head_dim];
    let q = Aligned16::new(small_values(q_shape.iter().product(), 1));
    let k = Aligned16::new(small_values(kv_shape.iter().product(), 2));
    let v = Aligned16::new(small_values(kv_shape.iter().product(), 3));
    let mut o = Aligned16::new(vec![SENTINEL; q_shape.iter().product()]);
    let mut lse = sentinels(A_BATCH * Q_HEADS * Q_LEN);
    let q_data = if misaligned_q { q.shifted() } else { q.get() };
    let result = llmk::attention(
        ctx,
        config,
        &input(q_data, &q_shape, "q", faulty),
        &input(k.get(), &kv_shape, "k", faulty),
        &input(v.get(), &kv_shape, "v", faulty),
        &mut output(o.get_mut(), &q_shape, "o", faulty),
        Some(&mut output(
            &mut lse,
            &[A_BATCH, Q_HEADS, Q_LEN],
            "lse",
            faulty,
        )),
        S,
    );
    Called {
        result,
        untouched: o.untouched() && untouched(&[&lse]),
    }
}

#[test]
fn attention_faults() {
    let ctx = cpu();
    let faults = [
        ("q", Fault::NullData, Status::NullPointer),
        ("lse", Fault::NullData, Status::NullPointer),
        ("v", Fault::F16, Status::DtypeMismatch),
        ("o", Fault::F16, Status::DtypeMismatch),
        ("lse", Fault::Bf16, Status::UnsupportedDtype),
        ("o", Fault::Shorter, Status::ShapeMismatch),
        ("lse", Fault::Shorter, Status::ShapeMismatch),
        ("k", Fault::NegativeStride, Status::InvalidStride),
    ];
    let config = AttentionConfig::default();
    check_faults("attention", &faults, |faulty| {
        attention_call(&ctx, &config, faulty, HEAD_DIM, false)
    });
}

#[test]
fn attention_layouts_it_cannot_take() {
    let ctx = cpu();
    let (config, none) = (AttentionConfig::default(), ("", Fault::None));
    let called = attention_call(&ctx, &config, none, HEAD_DIM, true);
    assert_refused("attention", called, Status::Misaligned, "q");

    let called = attention_call(&ctx, &config, none, 32, false);
    let error = called.result.expect_err("head_dim 32");
    assert_eq!(error.status(), Status::Unsupported, "{error}");
    assert!(error.message().starts_with("attention: "), "{error}");
    assert!(called.untouched, "{error}: a refused call wrote its output");

    // k's rows 4 elements further apart than kv_heads * head_dim: a stride that is no multiple
    // of 8 elements.
    let row = KV_HEADS * HEAD_DIM + 4;
    let (q, v) = (
        Aligned16::new(small_values(A_BATCH * Q_LEN * Q_HEADS * HEAD_DIM, 1)),
        Aligned16::new(small_values(A_BATCH * KV_LEN * KV_HEADS * HEAD_DIM, 2)),
    );
    let k = Aligned16::new(small_values(A_BATCH * KV_LEN * row, 3));
    let mut o = Aligned16::new(vec![SENTINEL; A_BATCH * Q_LEN * Q_HEADS * HEAD_DIM]);
    let result = llmk::attention(
        &ctx,
        &config,
        &TensorRef::contiguous(q.get(), &[A_BATCH, Q_LEN, Q_HEADS, HEAD_DIM]).unwrap(),
        &TensorRef::new(
            k.get(),
            &[A_BATCH, KV_LEN, KV_HEADS, HEAD_DIM],
            &[KV_LEN * row, row, HEAD_DIM, 1],
        )
        .unwrap(),
        &TensorRef::contiguous(v.get(), &[A_BATCH, KV_LEN, KV_HEADS, HEAD_DIM]).unwrap(),
        &mut TensorMut::contiguous(o.get_mut(), &[A_BATCH, Q_LEN, Q_HEADS, HEAD_DIM]).unwrap(),
        None,
        S,
    );
    let called = Called {
        result,
        untouched: o.untouched(),
    };
    assert_refused("attention", called, Status::Misaligned, "k");
}

#[test]
fn attention_config_values_are_checked() {
    let ctx = cpu();
    let mut configs = Vec::new();
    for scale in [-1.0, f32::NAN, f32::INFINITY] {
        let mut bad = AttentionConfig::default();
        bad.scale = scale;
        configs.push((bad, "scale"));
    }
    for softcap in [-1.0, f32::INFINITY] {
        let mut bad = AttentionConfig::default();
        bad.softcap = softcap;
        configs.push((bad, "softcap"));
    }
    for dropout_p in [1.0, -0.25, f32::NAN] {
        let mut bad = AttentionConfig::default();
        bad.dropout_p = dropout_p;
        configs.push((bad, "dropout_p"));
    }
    for (config, field) in configs {
        let called = attention_call(&ctx, &config, ("", Fault::None), HEAD_DIM, false);
        let error = called.result.expect_err(&format!("{config:?}"));
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(error.message().starts_with("attention: "), "{error}");
        assert!(
            names(error.message(), field),
            "{error} does not name {field}"
        );
        assert!(called.untouched, "a refused call wrote o or lse");
    }
    // A window the C int32_t cannot hold is refused before the library is called.
    let mut wide = AttentionConfig::default();
    wide.window_left = Some(u32::MAX);
    let called = attention_call(&ctx, &wide, ("", Fault::None), HEAD_DIM, false);
    assert_refused("attention", called, Status::InvalidValue, "window_left");
}

/// o's and lse's bits after a valid padded attention call (bf16 q, k, v: [`attention_call`]'s
/// sizes, `head_dim` wide).
fn attention_outputs(
    ctx: &Context,
    config: &AttentionConfig,
    head_dim: usize,
) -> (Vec<u16>, Vec<u32>) {
    let q_shape = [A_BATCH, Q_LEN, Q_HEADS, head_dim];
    let kv_shape = [A_BATCH, KV_LEN, KV_HEADS, head_dim];
    let q = Aligned16::new(small_values(q_shape.iter().product(), 1));
    let k = Aligned16::new(small_values(kv_shape.iter().product(), 2));
    let v = Aligned16::new(small_values(kv_shape.iter().product(), 3));
    let mut o = Aligned16::new(vec![SENTINEL; q_shape.iter().product()]);
    let mut lse = sentinels(A_BATCH * Q_HEADS * Q_LEN);
    llmk::attention(
        ctx,
        config,
        &TensorRef::contiguous(q.get(), &q_shape).unwrap(),
        &TensorRef::contiguous(k.get(), &kv_shape).unwrap(),
        &TensorRef::contiguous(v.get(), &kv_shape).unwrap(),
        &mut TensorMut::contiguous(o.get_mut(), &q_shape).unwrap(),
        Some(&mut TensorMut::contiguous(&mut lse, &[A_BATCH, Q_HEADS, Q_LEN]).unwrap()),
        S,
    )
    .unwrap_or_else(|error| panic!("{config:?}, head_dim {head_dim}: {error}"));
    assert!(!o.untouched() && !untouched(&[&lse]), "{config:?}");
    (
        o.get().iter().map(|v| v.to_bits()).collect(),
        lse.iter().map(|v| v.to_bits()).collect(),
    )
}

/// The kernel is a CUDA choice: a CPU context takes every [`AttentionKernel`], `Hopper` included
/// where a GPU would refuse it (head_dim 96, a soft-cap, dropout), and computes AUTO's o and lse
/// bit for bit.
#[test]
fn attention_kernel_is_ignored_on_the_cpu() {
    let ctx = cpu();
    for head_dim in [64, 96] {
        for (softcap, dropout_p) in [(0.0, 0.0), (2.0, 0.0), (0.0, 0.25)] {
            let mut config = AttentionConfig::default();
            config.causal = true;
            config.softcap = softcap;
            config.dropout_p = dropout_p;
            config.dropout_seed = 5;
            assert_eq!(config.kernel, AttentionKernel::Auto);
            let auto = attention_outputs(&ctx, &config, head_dim);
            for kernel in [AttentionKernel::Portable, AttentionKernel::Hopper] {
                config.kernel = kernel;
                assert!(
                    attention_outputs(&ctx, &config, head_dim) == auto,
                    "{config:?}, head_dim {head_dim}: not AUTO's result"
                );
            }
        }
    }
}

/// A kernel value outside `llmk_attention_kernel` (only `llmk::sys` can pass one:
/// [`AttentionKernel`] is a Rust enum) is refused with INVALID_VALUE naming `config->kernel`.
#[test]
fn attention_kernel_out_of_range_is_refused() {
    let ctx = cpu();
    let q_shape = [A_BATCH, Q_LEN, Q_HEADS, HEAD_DIM];
    let kv_shape = [A_BATCH, KV_LEN, KV_HEADS, HEAD_DIM];
    let q = Aligned16::new(small_values(q_shape.iter().product(), 1));
    let k = Aligned16::new(small_values(kv_shape.iter().product(), 2));
    let v = Aligned16::new(small_values(kv_shape.iter().product(), 3));
    let mut o = Aligned16::new(vec![SENTINEL; q_shape.iter().product()]);
    let (q_view, k_view, v_view) = (
        TensorRef::contiguous(q.get(), &q_shape).unwrap(),
        TensorRef::contiguous(k.get(), &kv_shape).unwrap(),
        TensorRef::contiguous(v.get(), &kv_shape).unwrap(),
    );
    for bad in [3, 7, -1] {
        let o_view = TensorMut::contiguous(o.get_mut(), &q_shape).unwrap();
        let mut raw = AttentionConfig::default().to_raw().unwrap();
        raw.kernel = bad;
        // SAFETY: a live context, a config filled by llmk_attention_config_init, valid host views
        // on a CPU context, no lse, the default stream.
        let status = unsafe {
            llmk::sys::llmk_attention(
                ctx.as_raw(),
                &raw,
                q_view.as_raw(),
                k_view.as_raw(),
                v_view.as_raw(),
                o_view.as_raw(),
                ptr::null(),
                S.as_raw(),
            )
        };
        // SAFETY: never NULL; read before any other llmk call on this thread.
        let message = unsafe { CStr::from_ptr(llmk::sys::llmk_last_error_message()) }
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            status,
            Status::InvalidValue.to_raw(),
            "kernel {bad}: {message}"
        );
        assert!(message.starts_with("attention: "), "{message}");
        assert!(message.contains("config->kernel"), "{message}");
        assert!(names(&message, "kernel"), "{message}");
    }
    assert!(o.untouched(), "a refused call wrote o");
}

#[test]
fn attention_outputs_overlapping_inputs_are_refused() {
    let ctx = cpu();
    let shape = [A_BATCH, Q_LEN, Q_HEADS, HEAD_DIM];
    let kv_shape = [A_BATCH, KV_LEN, KV_HEADS, HEAD_DIM];
    let n: usize = shape.iter().product();
    let mut q = Aligned16::new(vec![SENTINEL; n]);
    let (k, v) = (
        Aligned16::new(small_values(kv_shape.iter().product(), 2)),
        Aligned16::new(small_values(kv_shape.iter().product(), 3)),
    );
    let base = q.get_mut().as_mut_ptr();
    // SAFETY: q and o are the same view of `q`'s elements, which outlive both; the library
    // refuses the overlap before reading or writing either.
    let (q_view, mut o_view) = unsafe {
        let strides = [
            (Q_LEN * Q_HEADS * HEAD_DIM) as i64,
            (Q_HEADS * HEAD_DIM) as i64,
            64,
            1,
        ];
        let shape = shape.map(|n| n as i64);
        (
            TensorRef::from_raw_parts(base.cast_const().cast(), DType::Bf16, &shape, &strides)
                .unwrap(),
            TensorMut::from_raw_parts(base.cast(), DType::Bf16, &shape, &strides).unwrap(),
        )
    };
    let result = llmk::attention(
        &ctx,
        &AttentionConfig::default(),
        &q_view,
        &TensorRef::contiguous(k.get(), &kv_shape).unwrap(),
        &TensorRef::contiguous(v.get(), &kv_shape).unwrap(),
        &mut o_view,
        None,
        S,
    );
    let called = Called {
        result,
        untouched: q.untouched(),
    };
    assert_refused("attention", called, Status::Overlap, "o");
}

/// Three packed sequences: 3, 1 and 2 queries over 4, 0 and 3 keys.
const CU_Q: [i32; 4] = [0, 3, 4, 6];
const CU_K: [i32; 4] = [0, 4, 4, 7];

/// Packed attention over CU_Q and CU_K (unless given others), as [`attention_call`].
fn varlen_call(
    ctx: &Context,
    config: &AttentionConfig,
    cu_q: &[i32],
    cu_k: &[i32],
    max_seqlen_q: usize,
    faulty: (&str, Fault),
) -> (Called, Vec<f32>, Vec<f32>) {
    let (total_q, total_k) = (CU_Q[3] as usize, CU_K[3] as usize);
    let q_shape = [total_q, Q_HEADS, HEAD_DIM];
    let kv_shape = [total_k, KV_HEADS, HEAD_DIM];
    let q = Aligned16::new(small_values(q_shape.iter().product(), 4));
    let k = Aligned16::new(small_values(kv_shape.iter().product(), 5));
    let v = Aligned16::new(small_values(kv_shape.iter().product(), 6));
    let mut o = Aligned16::new(vec![SENTINEL; q_shape.iter().product()]);
    let mut lse = sentinels(Q_HEADS * total_q);
    let result = llmk::attention_varlen(
        ctx,
        config,
        &input(q.get(), &q_shape, "q", faulty),
        &input(k.get(), &kv_shape, "k", faulty),
        &input(v.get(), &kv_shape, "v", faulty),
        &input(cu_q, &[cu_q.len()], "cu_seqlens_q", faulty),
        &input(cu_k, &[cu_k.len()], "cu_seqlens_k", faulty),
        max_seqlen_q,
        &mut output(o.get_mut(), &q_shape, "o", faulty),
        Some(&mut output(&mut lse, &[Q_HEADS, total_q], "lse", faulty)),
        S,
    );
    let called = Called {
        result,
        untouched: o.untouched() && untouched(&[&lse]),
    };
    let o_values = o.get().iter().map(|v| v.to_f32()).collect();
    (called, o_values, lse)
}

#[test]
fn attention_varlen_faults() {
    let ctx = cpu();
    let config = AttentionConfig::default();
    let faults = [
        ("cu_seqlens_q", Fault::NullData, Status::NullPointer),
        ("k", Fault::F16, Status::DtypeMismatch),
        ("cu_seqlens_k", Fault::Shorter, Status::ShapeMismatch),
        ("lse", Fault::Shorter, Status::ShapeMismatch),
        ("q", Fault::NegativeStride, Status::InvalidStride),
    ];
    check_faults("attention_varlen", &faults, |faulty| {
        varlen_call(&ctx, &config, &CU_Q, &CU_K, 3, faulty).0
    });
}

#[test]
fn attention_varlen_offsets_are_checked() {
    let ctx = cpu();
    let config = AttentionConfig::default();
    let none = ("", Fault::None);
    for (cu_q, cu_k, role) in [
        ([0, 3, 2, 6], CU_K, "cu_seqlens_q"), // decreasing
        ([1, 3, 4, 6], CU_K, "cu_seqlens_q"), // not from 0
        ([0, 3, 4, 7], CU_K, "cu_seqlens_q"), // beyond total_q
        (CU_Q, [0, 4, 8, 7], "cu_seqlens_k"), // beyond total_k
        (CU_Q, [0, 5, 4, 7], "cu_seqlens_k"), // decreasing
    ] {
        let (called, ..) = varlen_call(&ctx, &config, &cu_q, &cu_k, 3, none);
        assert_refused("attention_varlen", called, Status::InvalidValue, role);
    }
    // The first sequence has 3 queries.
    let (called, ..) = varlen_call(&ctx, &config, &CU_Q, &CU_K, 2, none);
    let error = called
        .result
        .expect_err("max_seqlen_q 2 with a sequence of 3 queries");
    assert_eq!(error.status(), Status::InvalidValue, "{error}");
    assert!(
        names(error.message(), "max_seqlen_q") || names(error.message(), "cu_seqlens_q"),
        "{error}"
    );
    assert!(called.untouched, "{error}: a refused call wrote its output");
    let (called, ..) = varlen_call(&ctx, &config, &CU_Q, &CU_K, 0, none);
    assert_refused(
        "attention_varlen",
        called,
        Status::InvalidValue,
        "max_seqlen_q",
    );
    let (called, ..) = varlen_call(&ctx, &config, &CU_Q, &CU_K, usize::MAX, none);
    assert_refused(
        "attention_varlen",
        called,
        Status::InvalidValue,
        "max_seqlen_q",
    );
}

#[test]
fn attention_varlen_a_sequence_without_keys_gets_zeros_and_minus_infinity() {
    let ctx = cpu();
    let mut config = AttentionConfig::default();
    config.causal = true;
    let (called, o, lse) = varlen_call(&ctx, &config, &CU_Q, &CU_K, 3, ("", Fault::None));
    called.result.expect("a valid call");
    let total_q = CU_Q[3] as usize;
    // Query 3 is the second sequence's only one.
    let row = Q_HEADS * HEAD_DIM;
    assert!(o[3 * row..4 * row].iter().all(|&v| v == 0.0));
    for h in 0..Q_HEADS {
        assert_eq!(lse[h * total_q + 3], f32::NEG_INFINITY);
        for i in [0, 1, 2, 4, 5] {
            assert!(lse[h * total_q + i].is_finite(), "lse[{h}, {i}]");
        }
    }
    assert!(o.iter().all(|v| v.is_finite()));
}

/// `o` and `lse` against an f64 reference of llmk.h's formula, causal with GQA and a window.
#[test]
fn attention_matches_a_reference() {
    let ctx = cpu();
    let (q_len, kv_len, heads, kv_heads, d) = (4, 6, 4, 2, HEAD_DIM);
    let q = Aligned16::new(small_values(q_len * heads * d, 7));
    let k = Aligned16::new(small_values(kv_len * kv_heads * d, 8).map(|x| x * 0.5));
    let v = Aligned16::new(small_values(kv_len * kv_heads * d, 9));
    let mut o = Aligned16::new(vec![SENTINEL; q_len * heads * d]);
    let mut lse = sentinels(heads * q_len);
    let mut config = AttentionConfig::default();
    config.causal = true;
    config.window_left = Some(2);
    llmk::attention(
        &ctx,
        &config,
        &TensorRef::contiguous(q.get(), &[1, q_len, heads, d]).unwrap(),
        &TensorRef::contiguous(k.get(), &[1, kv_len, kv_heads, d]).unwrap(),
        &TensorRef::contiguous(v.get(), &[1, kv_len, kv_heads, d]).unwrap(),
        &mut TensorMut::contiguous(o.get_mut(), &[1, q_len, heads, d]).unwrap(),
        Some(&mut TensorMut::contiguous(&mut lse, &[1, heads, q_len]).unwrap()),
        S,
    )
    .unwrap();
    let value = |t: &Aligned16, i: usize| f64::from(t.get()[i].to_f32());
    let scale = 1.0 / (d as f64).sqrt();
    for h in 0..heads {
        let kh = h / (heads / kv_heads);
        for i in 0..q_len {
            // Query i sits at key position i + kv_len - q_len; it sees that key and 2 before.
            let position = i + kv_len - q_len;
            let keys: Vec<usize> = (position - 2..=position).collect();
            let scores: Vec<f64> = keys
                .iter()
                .map(|&j| {
                    scale
                        * (0..d)
                            .map(|e| {
                                value(&q, (i * heads + h) * d + e)
                                    * value(&k, (j * kv_heads + kh) * d + e)
                            })
                            .sum::<f64>()
                })
                .collect();
            let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores.iter().map(|s| (s - top).exp()).sum();
            let want_lse = top + sum.ln();
            let got_lse = f64::from(lse[h * q_len + i]);
            assert!(
                (got_lse - want_lse).abs() <= 1e-5 * want_lse.abs().max(1.0),
                "lse[{h}, {i}] = {got_lse}, want {want_lse}"
            );
            for e in 0..d {
                let want: f64 = keys
                    .iter()
                    .zip(&scores)
                    .map(|(&j, s)| (s - top).exp() / sum * value(&v, (j * kv_heads + kh) * d + e))
                    .sum();
                let got = f64::from(o.get()[(i * heads + h) * d + e].to_f32());
                assert!(
                    (got - want).abs() <= 2f64.powi(-7) * want.abs() + 1e-5,
                    "o[{i}, {h}, {e}] = {got}, want {want}"
                );
            }
        }
    }
}
