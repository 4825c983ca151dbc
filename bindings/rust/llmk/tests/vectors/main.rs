//! The shared test vectors (`tests/vectors/README.md`) through the safe API: every case of
//! `manifest.txt` on the CPU context and, when there is a GPU, on CUDA device 0.
//!
//! The semantics are those of the C++ runner, `tests/common/vectors.cpp`: each role that names a
//! file, or is an output, gets a backing buffer of its own; a role `@S` is a view into `S`'s
//! buffer, `R.offset` elements in. After the op, per buffer, every view with an `expect.` file
//! must match it, and every other element of the buffer must hold its initial bytes. `ffn` and
//! `gated_mlp` get a workspace of the size their `*_workspace_size` asks for, from `llmk_malloc`
//! on the context, every byte 0xff (NaN in each float dtype); `matmul` cases also check what
//! `matmul_path_for` says of the call. An expected infinity (the log-sum-exp of an attention query
//! that sees no key) is matched only by the same infinity; NaN never passes.
//!
//! The vectors are read from `$LLMK_VECTORS_DIR`, else from the source tree the binary was built
//! in; set the variable where the binary runs on another machine.

#[path = "../common/mod.rs"]
mod common;
mod manifest;
mod npy;

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use llmk::{
    Activation, AdamWConfig, AttentionConfig, Backend, Bf16, Context, DType, DeviceBuffer, F16,
    MatmulConfig, MatmulPath, MlpConfig, RopeConfig, RopeStyle, Stream, TensorMut, TensorRef,
    Workspace,
};

use common::announce;
use manifest::Case;
use npy::Npy;

type Outcome<T = ()> = Result<T, Box<dyn Error>>;

// Buffers travel as the files' little-endian bytes.
const _: () = assert!(cfg!(target_endian = "little"));

const S: Stream = Stream::DEFAULT;

#[test]
fn vectors_on_cpu() {
    run_all(&Context::cpu().expect("CPU context"), "the CPU");
}

#[test]
fn vectors_on_cuda() {
    let count = llmk::cuda_device_count().expect("cuda_device_count");
    if count == 0 {
        announce("vectors_on_cuda: SKIPPED, no CUDA device (cuda_device_count() is 0)");
        return;
    }
    let ctx = Context::cuda(0).expect("CUDA context on device 0");
    assert_eq!((ctx.backend(), ctx.device()), (Backend::Cuda, Some(0)));
    run_all(&ctx, "CUDA device 0");
}

fn vectors_dir() -> PathBuf {
    std::env::var_os("LLMK_VECTORS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tests/vectors"),
        PathBuf::from,
    )
}

fn run_all(ctx: &Context, on: &str) {
    let dir = vectors_dir();
    let cases = manifest::load(&dir)
        .unwrap_or_else(|e| panic!("{e}; set LLMK_VECTORS_DIR to the tests/vectors directory"));
    assert!(!cases.is_empty(), "{} has no cases", dir.display());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let outcome = run_case(ctx, case, &dir);
            outcome.err().map(|e| format!("{}: {e}", case.name))
        })
        .collect();
    let mut per_op = BTreeMap::<&str, usize>::new();
    for case in &cases {
        *per_op.entry(case.find("op").unwrap_or("?")).or_default() += 1;
    }
    let per_op: Vec<String> = per_op.iter().map(|(op, n)| format!("{op} {n}")).collect();
    announce(&format!(
        "vectors on {on}: {} of {} cases passed ({}; {})",
        cases.len() - failures.len(),
        cases.len(),
        per_op.join(", "),
        dir.display()
    ));
    assert!(
        failures.is_empty(),
        "{} of {} cases failed on {on}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The tensor roles of each op, in the C argument order (`op_roles()` of the C++ runner).
fn op_roles(op: &str) -> Outcome<&'static [&'static str]> {
    Ok(match op {
        "rms_norm" => &["x", "weight", "y"],
        "add_rms_norm" => &["x", "residual", "weight", "y"],
        "layer_norm" => &["x", "weight", "bias", "y"],
        "bias_activation" => &["x", "bias", "y"],
        "gated_activation" => &["gate", "up", "y"],
        "rope" => &["positions", "q", "k", "cos_sin_cache"],
        "embedding" => &["ids", "table", "y"],
        "kv_cache_write" => &["k", "v", "cache_seqlens", "k_cache", "v_cache"],
        "paged_kv_cache_write" => &["k", "v", "slot_mapping", "k_cache", "v_cache"],
        "adamw_step" => &["param", "grad", "exp_avg", "exp_avg_sq"],
        "matmul" => &["a", "b", "c", "bias", "d"],
        "ffn" => &["x", "w1", "b1", "w2", "b2", "y"],
        "gated_mlp" => &["x", "w_gate", "w_up", "w_down", "y"],
        "attention" => &["q", "k", "v", "o", "lse"],
        "attention_varlen" => &["q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "o", "lse"],
        _ => return Err(format!("unknown op {op}").into()),
    })
}

/// A dtype of the vectors: the library's, and how its `.npy` files store it.
#[derive(Clone, Copy, PartialEq)]
struct Dtype {
    dtype: DType,
    descr: &'static str,
    size: usize,
}

impl Dtype {
    fn from_name(name: &str) -> Outcome<Self> {
        let (dtype, descr, size) = match name {
            "f32" => (DType::F32, "<f4", 4),
            "f16" => (DType::F16, "<f2", 2),
            // bfloat16 has no numpy type: the files hold the raw bits.
            "bf16" => (DType::Bf16, "<u2", 2),
            "i32" => (DType::I32, "<i4", 4),
            "i64" => (DType::I64, "<i8", 8),
            _ => return Err(format!("dtype {name} is not in the vector format").into()),
        };
        Ok(Self { dtype, descr, size })
    }

    /// The value of one element from its little-endian bytes.
    fn decode(self, bytes: &[u8]) -> f64 {
        let two = || u16::from_le_bytes(bytes.try_into().expect("2 bytes"));
        match self.dtype {
            DType::F32 => f64::from(f32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
            DType::F16 => f64::from(F16::from_bits(two()).to_f32()),
            DType::Bf16 => f64::from(Bf16::from_bits(two()).to_f32()),
            DType::I32 => f64::from(i32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
            // Exact for the ids, positions and slots of the vectors (below 2^53).
            DType::I64 => i64::from_le_bytes(bytes.try_into().expect("8 bytes")) as f64,
            other => unreachable!("{other} is not a vector dtype"),
        }
    }

    /// The bytes of a buffer of `len` NaNs, which the runner gives an output before the op.
    fn nan_buffer(self, len: usize) -> Outcome<Vec<u8>> {
        let nan: Vec<u8> = match self.dtype {
            DType::F32 => f32::NAN.to_le_bytes().to_vec(),
            DType::F16 => F16::from_f32(f32::NAN).to_bits().to_le_bytes().to_vec(),
            DType::Bf16 => Bf16::from_f32(f32::NAN).to_bits().to_le_bytes().to_vec(),
            other => return Err(format!("an output of {other} cannot be filled with NaN").into()),
        };
        Ok(nan.repeat(len))
    }
}

/// One tensor role of a case: its view into a backing buffer.
struct Role {
    dtype: Dtype,
    shape: Vec<i64>,
    strides: Vec<i64>,
    /// The role whose buffer this view is in: itself, or `S` for `@S`.
    buffer: String,
    /// Elements from the buffer's start to the view's first element.
    offset: usize,
}

impl Role {
    fn parse(case: &Case, name: &str) -> Outcome<Self> {
        let numbers = |key: String| -> Outcome<Vec<i64>> {
            let text = case.get(&key)?;
            let parse = |n: &str| n.parse().map_err(|e| format!("{key}={text}: {e}").into());
            text.split(',')
                .filter(|n| !n.is_empty())
                .map(parse)
                .collect()
        };
        let shape = numbers(format!("{name}.shape"))?;
        let strides = numbers(format!("{name}.strides"))?;
        if shape.len() != strides.len() || shape.iter().chain(&strides).any(|&n| n < 0) {
            return Err(
                format!("{name}: shape {shape:?} and strides {strides:?} do not fit").into(),
            );
        }
        let (buffer, offset) = match case.find(name).and_then(|v| v.strip_prefix('@')) {
            Some(base) => {
                let offset = case.find(&format!("{name}.offset")).unwrap_or("0");
                (base.to_owned(), offset.parse()?)
            }
            None => (name.to_owned(), 0),
        };
        Ok(Self {
            dtype: Dtype::from_name(case.get(&format!("{name}.dtype"))?)?,
            shape,
            strides,
            buffer,
            offset,
        })
    }

    /// Elements of a backing buffer that holds just this view from its start:
    /// `1 + sum((shape[k] - 1) * strides[k])`, or 0 if any extent is 0.
    fn extent(&self) -> usize {
        if self.shape.contains(&0) {
            return 0;
        }
        let furthest: i64 = self
            .shape
            .iter()
            .zip(&self.strides)
            .map(|(n, s)| (n - 1) * s)
            .sum();
        furthest as usize + 1
    }

    /// The buffer element of each element of the view, in C order.
    fn offsets(&self) -> Vec<usize> {
        let count = self.shape.iter().product::<i64>() as usize;
        (0..count)
            .map(|index| {
                let mut rest = index;
                let mut offset = self.offset;
                for (&extent, &stride) in self.shape.iter().zip(&self.strides).rev() {
                    offset += rest % extent as usize * stride as usize;
                    rest /= extent as usize;
                }
                offset
            })
            .collect()
    }

    /// Whether two roles are the very same tensor (the in-place form `y=@x`).
    fn same_view(&self, other: &Self) -> bool {
        (&self.buffer, self.offset, self.dtype) == (&other.buffer, other.offset, other.dtype)
            && (&self.shape, &self.strides) == (&other.shape, &other.strides)
    }
}

/// A backing buffer on the context, and its bytes before the op.
struct Buffer<'c> {
    memory: DeviceBuffer<'c, u8>,
    /// `memory`'s first byte: views of the library's calls are made from it.
    base: *mut u8,
    element: usize,
    initial: Vec<u8>,
}

/// The roles of one case and their buffers.
struct Tensors<'c> {
    roles: BTreeMap<String, Role>,
    buffers: BTreeMap<String, Buffer<'c>>,
}

impl<'c> Tensors<'c> {
    /// Every role of the case's op that the case gives, in buffers on `ctx` holding the files'
    /// contents (NaN for outputs).
    fn load(ctx: &'c Context, case: &Case, dir: &Path, names: &[&str]) -> Outcome<Self> {
        let mut roles = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        // An optional role left out of the line is passed as None.
        for &name in names
            .iter()
            .filter(|name| case.find(&format!("{name}.shape")).is_some())
        {
            let role = Role::parse(case, name)?;
            if role.buffer == name {
                let initial = match case.find(name) {
                    Some(file) => Npy::read(&dir.join("data").join(file))?
                        .into_bytes(role.dtype.descr, role.dtype.size)
                        .map_err(|e| format!("{file}: {e}"))?,
                    None => role.dtype.nan_buffer(role.extent())?,
                };
                let mut memory = DeviceBuffer::from_slice(ctx, &initial, S)?;
                let base = memory.as_mut_ptr();
                let element = role.dtype.size;
                buffers.insert(
                    name.to_owned(),
                    Buffer {
                        memory,
                        base,
                        element,
                        initial,
                    },
                );
            }
            roles.insert(name.to_owned(), role);
        }
        for (name, role) in &roles {
            let buffer = buffers
                .get(&role.buffer)
                .ok_or_else(|| format!("{name}=@{}: {} has no buffer", role.buffer, role.buffer))?;
            if role.dtype.size != buffer.element {
                return Err(
                    format!("{name}: elements of another size than {}'s", role.buffer).into(),
                );
            }
            let elements = buffer.initial.len() / buffer.element;
            if role.extent() > 0 && role.offset + role.extent() > elements {
                return Err(format!(
                    "{name}: the view reaches beyond the {elements} elements of its buffer"
                )
                .into());
            }
        }
        Ok(Self { roles, buffers })
    }

    fn role(&self, name: &str) -> Outcome<&Role> {
        Ok(self
            .roles
            .get(name)
            .ok_or_else(|| format!("the case has no {name}"))?)
    }

    fn has(&self, name: &str) -> bool {
        self.roles.contains_key(name)
    }

    /// Whether roles `a` and `b` are both given and the very same tensor.
    fn same(&self, a: &str, b: &str) -> bool {
        matches!((self.roles.get(a), self.roles.get(b)), (Some(a), Some(b)) if a.same_view(b))
    }

    /// The first element of a role's view: NULL in an empty buffer, as the C++ runner passes it
    /// (an empty view's data is not read, and a dangling pointer need not be aligned).
    fn data(&self, role: &Role) -> *mut u8 {
        let buffer = &self.buffers[&role.buffer];
        if buffer.initial.is_empty() {
            return std::ptr::null_mut();
        }
        buffer.base.wrapping_add(role.offset * buffer.element)
    }

    /// Role `name` for the op to read.
    fn input(&self, name: &str) -> Outcome<TensorRef<'_>> {
        let role = self.role(name)?;
        // SAFETY: the view lies within its buffer (checked in load), which is in the context's
        // memory space and outlives the view; only the op call the view is passed to accesses the
        // buffers while it lives.
        let view = unsafe {
            TensorRef::from_raw_parts(
                self.data(role).cast_const().cast(),
                role.dtype.dtype,
                &role.shape,
                &role.strides,
            )
        };
        Ok(view?)
    }

    /// Optional role `name` for the op to read: `None` when the case leaves it out.
    fn optional_input(&self, name: &str) -> Outcome<Option<TensorRef<'_>>> {
        self.has(name).then(|| self.input(name)).transpose()
    }

    /// Role `name` for the op to write. Views of one buffer alias each other; the library checks
    /// that an op's outputs overlap only as it allows.
    fn output(&self, name: &str) -> Outcome<TensorMut<'_>> {
        let role = self.role(name)?;
        // SAFETY: as in `input`.
        let view = unsafe {
            TensorMut::from_raw_parts(
                self.data(role).cast(),
                role.dtype.dtype,
                &role.shape,
                &role.strides,
            )
        };
        Ok(view?)
    }

    /// What is wrong after the op: per buffer, the views with an `expect.` file must match it
    /// within `atol + rtol * |expect|` (NaN never passes, an infinity only where it is expected),
    /// and every other element must hold its initial bytes.
    fn check(&self, case: &Case, dir: &Path) -> Outcome<Vec<String>> {
        let mut problems = Vec::new();
        for (buffer_name, buffer) in &self.buffers {
            let after = buffer.memory.to_vec(S)?;
            let mut checked = vec![false; after.len() / buffer.element];
            for (name, role) in &self.roles {
                if role.buffer != *buffer_name || case.find(&format!("expect.{name}")).is_none() {
                    continue;
                }
                let problem =
                    check_view(case, dir, name, role, &after, buffer.element, &mut checked)?;
                problems.extend(problem);
            }
            let element = buffer.element;
            let changed = (0..checked.len()).find(|&e| {
                let bytes = e * element..(e + 1) * element;
                !checked[e] && after[bytes.clone()] != buffer.initial[bytes]
            });
            if let Some(e) = changed {
                problems.push(format!(
                    "{buffer_name}: element {e} outside every output view was written"
                ));
            }
        }
        Ok(problems)
    }
}

/// What is wrong with view `name` of a buffer's contents `after`; marks its elements checked.
fn check_view(
    case: &Case,
    dir: &Path,
    name: &str,
    role: &Role,
    after: &[u8],
    element: usize,
    checked: &mut [bool],
) -> Outcome<Option<String>> {
    let file = case.get(&format!("expect.{name}"))?;
    let rtol: f64 = case.get(&format!("rtol.{name}"))?.parse()?;
    let atol: f64 = case.get(&format!("atol.{name}"))?.parse()?;
    let expect = Npy::read(&dir.join("data").join(file))?;
    let shape: Vec<i64> = expect.shape.iter().map(|&n| n as i64).collect();
    if shape != role.shape {
        return Err(format!("{file} has shape {shape:?}, {name} {:?}", role.shape).into());
    }
    let want = expect.into_f64().map_err(|e| format!("{file}: {e}"))?;
    let offsets = role.offsets();
    let mut off = Vec::new();
    for (index, (&offset, want)) in offsets.iter().zip(want).enumerate() {
        checked[offset] = true;
        let got = role
            .dtype
            .decode(&after[offset * element..(offset + 1) * element]);
        if !matches(got, want, rtol, atol) {
            off.push(format!("{name}[{index}] = {got}, expected {want}"));
        }
    }
    Ok((!off.is_empty()).then(|| {
        format!(
            "{} of {} elements of {name} off (rtol {rtol}, atol {atol}): {}",
            off.len(),
            offsets.len(),
            off[..off.len().min(3)].join(", ")
        )
    }))
}

/// Whether an output element passes: an expected infinity (the log-sum-exp of an attention query
/// that sees no key) only as the same infinity; any other expected value within
/// `atol + rtol * |want|` of a finite `got`. NaN never passes.
fn matches(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    if want.is_infinite() {
        return got == want;
    }
    got.is_finite() && (got - want).abs() <= atol + rtol * want.abs()
}

fn run_case(ctx: &Context, case: &Case, dir: &Path) -> Outcome {
    let op = case.get("op")?;
    let tensors = Tensors::load(ctx, case, dir, op_roles(op)?)?;
    call_op(ctx, case, op, &tensors)?;
    ctx.synchronize(S)?;
    let problems = tensors.check(case, dir)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

/// A number of the case, parsed as the README says.
fn number<T: std::str::FromStr>(case: &Case, key: &str) -> Outcome<T>
where
    T::Err: Error + 'static,
{
    let text = case.get(key)?;
    Ok(text.parse().map_err(|e| format!("{key}={text}: {e}"))?)
}

/// Sets `field` from key `key` of the case if it has one: a config field that is absent keeps
/// its default.
fn set_if_given<T: std::str::FromStr>(case: &Case, key: &str, field: &mut T) -> Outcome
where
    T::Err: Error + 'static,
{
    if case.find(key).is_some() {
        *field = number(case, key)?;
    }
    Ok(())
}

/// An integer of the case, also when it is spelled as a whole float (`64.0`, `1e+15`: the
/// generator's numbers go through float64, so they stay below 2^53).
fn integer<T: TryFrom<i64>>(case: &Case, key: &str) -> Outcome<T> {
    let text = case.get(key)?;
    let value = match text.parse::<i64>() {
        Ok(value) => value,
        Err(_) => {
            let float: f64 = text.parse().map_err(|e| format!("{key}={text}: {e}"))?;
            if float.fract() != 0.0 || float.abs() > 2f64.powi(53) {
                return Err(format!("{key}={text} is not an integer").into());
            }
            float as i64
        }
    };
    T::try_from(value).map_err(|_| format!("{key}={text} is out of range").into())
}

/// An attention window of the case: absent or -1 (the C "no limit") is `None`.
fn window(case: &Case, key: &str, default: Option<u32>) -> Outcome<Option<u32>> {
    if case.find(key).is_none() {
        return Ok(default);
    }
    match integer::<i64>(case, key)? {
        -1 => Ok(None),
        w => Ok(Some(
            u32::try_from(w).map_err(|_| format!("{key}={w} is not -1 or a window"))?,
        )),
    }
}

fn attention_config(case: &Case) -> Outcome<AttentionConfig> {
    let mut config = AttentionConfig::default();
    set_if_given(case, "scale", &mut config.scale)?;
    if case.find("causal").is_some() {
        config.causal = flag(case, "causal")?;
    }
    config.window_left = window(case, "window_left", config.window_left)?;
    config.window_right = window(case, "window_right", config.window_right)?;
    set_if_given(case, "softcap", &mut config.softcap)?;
    set_if_given(case, "dropout_p", &mut config.dropout_p)?;
    if case.find("dropout_offset").is_some() {
        config.dropout_offset = integer(case, "dropout_offset")?;
    }
    if case.find("dropout_seed").is_some() {
        // The whole u64 range (the cases go above 2^63), never through a float64.
        let text = case.get("dropout_seed")?;
        config.dropout_seed = text
            .parse::<u64>()
            .map_err(|e| format!("dropout_seed={text}: {e}"))?;
    }
    Ok(config)
}

fn activation(case: &Case) -> Outcome<Activation> {
    Ok(match case.get("activation")? {
        "identity" => Activation::Identity,
        "gelu" => Activation::Gelu,
        "gelu_tanh" => Activation::GeluTanh,
        "silu" => Activation::Silu,
        "relu" => Activation::Relu,
        other => return Err(format!("activation={other} is not an llmk_activation").into()),
    })
}

/// A 0/1 flag of the case (`allow_tf32=1`), also spelled as a float (`1.0`).
fn flag(case: &Case, key: &str) -> Outcome<bool> {
    let value = number::<f64>(case, key)?;
    if value == 0.0 || value == 1.0 {
        Ok(value == 1.0)
    } else {
        Err(format!("{key}={value} is not 0 or 1").into())
    }
}

fn matmul_path(case: &Case) -> Outcome<MatmulPath> {
    Ok(match case.get("path")? {
        "auto" => MatmulPath::Auto,
        "cublaslt" => MatmulPath::CublasLt,
        "gemv" => MatmulPath::Gemv,
        other => return Err(format!("path={other} is not an llmk_matmul_path").into()),
    })
}

fn matmul_config(case: &Case) -> Outcome<MatmulConfig> {
    let mut config = MatmulConfig::default();
    set_if_given(case, "alpha", &mut config.alpha)?;
    set_if_given(case, "beta", &mut config.beta)?;
    if case.find("activation").is_some() {
        config.activation = activation(case)?;
    }
    if case.find("allow_tf32").is_some() {
        config.allow_tf32 = flag(case, "allow_tf32")?;
    }
    if case.find("path").is_some() {
        config.path = matmul_path(case)?;
    }
    Ok(config)
}

fn mlp_config(case: &Case) -> Outcome<MlpConfig> {
    let mut config = MlpConfig::default();
    if case.find("allow_tf32").is_some() {
        config.allow_tf32 = flag(case, "allow_tf32")?;
    }
    if case.find("path").is_some() {
        config.path = matmul_path(case)?;
    }
    Ok(config)
}

/// A workspace of `bytes` on the context, from `llmk_malloc`, every byte 0xff: NaN in every float
/// dtype, so that an intermediate read before it is written shows in the output.
fn poisoned_workspace(ctx: &Context, bytes: usize) -> Outcome<DeviceBuffer<'_, u8>> {
    Ok(DeviceBuffer::from_slice(ctx, &vec![0xff; bytes], S)?)
}

/// Checks what `matmul_path_for` says of the case's call: an engine, never `Auto`, and the one the
/// config asks for when it asks for one.
fn check_matmul_path(
    ctx: &Context,
    config: &MatmulConfig,
    t: &Tensors<'_>,
    in_place: bool,
) -> Outcome {
    let d = t.input("d")?;
    let c = if in_place {
        Some(t.input("d")?)
    } else {
        t.optional_input("c")?
    };
    let path = llmk::matmul_path_for(
        ctx,
        config,
        &t.input("a")?,
        &t.input("b")?,
        c.as_ref(),
        t.optional_input("bias")?.as_ref(),
        &d,
    )?;
    let fits = match config.path {
        MatmulPath::Auto => path != MatmulPath::Auto,
        asked => path == asked,
    };
    if !fits {
        return Err(format!("matmul_path_for says {path:?} for path {:?}", config.path).into());
    }
    Ok(())
}

fn rope_config(case: &Case) -> Outcome<RopeConfig> {
    let mut config = RopeConfig::default();
    if let Some(style) = case.find("style") {
        config.style = match style {
            "neox" => RopeStyle::Neox,
            "gptj" => RopeStyle::Gptj,
            other => return Err(format!("style={other} is not an llmk_rope_style").into()),
        };
    }
    set_if_given(case, "rotary_dim", &mut config.rotary_dim)?;
    set_if_given(case, "theta", &mut config.theta)?;
    set_if_given(case, "llama3_factor", &mut config.llama3_factor)?;
    set_if_given(
        case,
        "llama3_low_freq_factor",
        &mut config.llama3_low_freq_factor,
    )?;
    set_if_given(
        case,
        "llama3_high_freq_factor",
        &mut config.llama3_high_freq_factor,
    )?;
    set_if_given(
        case,
        "llama3_original_max_position",
        &mut config.llama3_original_max_position,
    )?;
    Ok(config)
}

fn adamw_config(case: &Case) -> Outcome<AdamWConfig> {
    let mut config = AdamWConfig::default();
    set_if_given(case, "lr", &mut config.lr)?;
    set_if_given(case, "beta1", &mut config.beta1)?;
    set_if_given(case, "beta2", &mut config.beta2)?;
    set_if_given(case, "eps", &mut config.eps)?;
    set_if_given(case, "weight_decay", &mut config.weight_decay)?;
    set_if_given(case, "step", &mut config.step)?;
    Ok(config)
}

/// Calls the op of the case through the safe API: the `*_in_place` form where an output is the
/// very same tensor as the input it may replace, the plain form otherwise (passing any other
/// aliasing of the case on to the library).
fn call_op(ctx: &Context, case: &Case, op: &str, t: &Tensors<'_>) -> Outcome {
    // Parsed as a float64, then passed as the C type.
    let eps = || number::<f64>(case, "eps").map(|eps| eps as f32);
    match op {
        "rms_norm" if t.same("y", "x") => {
            llmk::rms_norm_in_place(ctx, &mut t.output("x")?, &t.input("weight")?, eps()?, S)
        }
        "rms_norm" => llmk::rms_norm(
            ctx,
            &t.input("x")?,
            &t.input("weight")?,
            eps()?,
            &mut t.output("y")?,
            S,
        ),
        "add_rms_norm" if t.same("y", "x") => llmk::add_rms_norm_in_place(
            ctx,
            &mut t.output("x")?,
            &mut t.output("residual")?,
            &t.input("weight")?,
            eps()?,
            S,
        ),
        "add_rms_norm" => llmk::add_rms_norm(
            ctx,
            &t.input("x")?,
            &mut t.output("residual")?,
            &t.input("weight")?,
            eps()?,
            &mut t.output("y")?,
            S,
        ),
        "layer_norm" if t.same("y", "x") => llmk::layer_norm_in_place(
            ctx,
            &mut t.output("x")?,
            &t.input("weight")?,
            t.optional_input("bias")?.as_ref(),
            eps()?,
            S,
        ),
        "layer_norm" => llmk::layer_norm(
            ctx,
            &t.input("x")?,
            &t.input("weight")?,
            t.optional_input("bias")?.as_ref(),
            eps()?,
            &mut t.output("y")?,
            S,
        ),
        "bias_activation" if t.same("y", "x") => llmk::bias_activation_in_place(
            ctx,
            &mut t.output("x")?,
            t.optional_input("bias")?.as_ref(),
            activation(case)?,
            S,
        ),
        "bias_activation" => llmk::bias_activation(
            ctx,
            &t.input("x")?,
            t.optional_input("bias")?.as_ref(),
            activation(case)?,
            &mut t.output("y")?,
            S,
        ),
        "gated_activation" if t.same("y", "gate") => llmk::gated_activation_in_place(
            ctx,
            &mut t.output("gate")?,
            &t.input("up")?,
            activation(case)?,
            S,
        ),
        "gated_activation" => llmk::gated_activation(
            ctx,
            &t.input("gate")?,
            &t.input("up")?,
            activation(case)?,
            &mut t.output("y")?,
            S,
        ),
        "rope" => {
            let mut k = t.has("k").then(|| t.output("k")).transpose()?;
            llmk::rope(
                ctx,
                &rope_config(case)?,
                &t.input("positions")?,
                &mut t.output("q")?,
                k.as_mut(),
                t.optional_input("cos_sin_cache")?.as_ref(),
                S,
            )
        }
        "embedding" => llmk::embedding(
            ctx,
            &t.input("ids")?,
            &t.input("table")?,
            &mut t.output("y")?,
            S,
        ),
        "kv_cache_write" => llmk::kv_cache_write(
            ctx,
            &t.input("k")?,
            &t.input("v")?,
            &t.input("cache_seqlens")?,
            &mut t.output("k_cache")?,
            &mut t.output("v_cache")?,
            S,
        ),
        "paged_kv_cache_write" => llmk::paged_kv_cache_write(
            ctx,
            &t.input("k")?,
            &t.input("v")?,
            &t.input("slot_mapping")?,
            &mut t.output("k_cache")?,
            &mut t.output("v_cache")?,
            S,
        ),
        "adamw_step" => llmk::adamw_step(
            ctx,
            &adamw_config(case)?,
            &mut t.output("param")?,
            &t.input("grad")?,
            &mut t.output("exp_avg")?,
            &mut t.output("exp_avg_sq")?,
            S,
        ),
        "matmul" => {
            let config = matmul_config(case)?;
            let in_place = t.same("d", "c");
            check_matmul_path(ctx, &config, t, in_place)?;
            let (a, b, bias) = (t.input("a")?, t.input("b")?, t.optional_input("bias")?);
            if in_place {
                llmk::matmul_in_place(ctx, &config, &a, &b, bias.as_ref(), &mut t.output("d")?, S)
            } else {
                llmk::matmul(
                    ctx,
                    &config,
                    &a,
                    &b,
                    t.optional_input("c")?.as_ref(),
                    bias.as_ref(),
                    &mut t.output("d")?,
                    S,
                )
            }
        }
        "ffn" => {
            let (x, w1) = (t.input("x")?, t.input("w1")?);
            let mut memory = poisoned_workspace(ctx, llmk::ffn_workspace_size(ctx, &x, &w1)?)?;
            let result = llmk::ffn(
                ctx,
                &mlp_config(case)?,
                &x,
                &w1,
                t.optional_input("b1")?.as_ref(),
                &t.input("w2")?,
                t.optional_input("b2")?.as_ref(),
                activation(case)?,
                &mut Workspace::new(&mut memory),
                &mut t.output("y")?,
                S,
            );
            // The op may still use the workspace on a CUDA stream: wait before freeing it.
            result.and_then(|()| ctx.synchronize(S))
        }
        "gated_mlp" => {
            let (x, w_gate) = (t.input("x")?, t.input("w_gate")?);
            let bytes = llmk::gated_mlp_workspace_size(ctx, &x, &w_gate)?;
            let mut memory = poisoned_workspace(ctx, bytes)?;
            let result = llmk::gated_mlp(
                ctx,
                &mlp_config(case)?,
                &x,
                &w_gate,
                &t.input("w_up")?,
                &t.input("w_down")?,
                activation(case)?,
                &mut Workspace::new(&mut memory),
                &mut t.output("y")?,
                S,
            );
            // As for ffn.
            result.and_then(|()| ctx.synchronize(S))
        }
        "attention" => {
            let mut lse = t.has("lse").then(|| t.output("lse")).transpose()?;
            llmk::attention(
                ctx,
                &attention_config(case)?,
                &t.input("q")?,
                &t.input("k")?,
                &t.input("v")?,
                &mut t.output("o")?,
                lse.as_mut(),
                S,
            )
        }
        "attention_varlen" => {
            let mut lse = t.has("lse").then(|| t.output("lse")).transpose()?;
            llmk::attention_varlen(
                ctx,
                &attention_config(case)?,
                &t.input("q")?,
                &t.input("k")?,
                &t.input("v")?,
                &t.input("cu_seqlens_q")?,
                &t.input("cu_seqlens_k")?,
                integer(case, "max_seqlen_q")?,
                &mut t.output("o")?,
                lse.as_mut(),
                S,
            )
        }
        _ => return Err(format!("unknown op {op}").into()),
    }?;
    Ok(())
}

#[test]
fn roles_view_other_roles_buffers() {
    let line = "name=t op=gated_activation gate.dtype=bf16 gate.shape=2,3 gate.strides=6,1 \
                gate=g.npy up.dtype=bf16 up.shape=2,3 up.strides=6,1 up=@gate up.offset=3 \
                y.dtype=bf16 y.shape=2,3 y.strides=6,1 y=@gate";
    let case = Case::parse(line).unwrap();
    let (gate, up, y) = (
        Role::parse(&case, "gate").unwrap(),
        Role::parse(&case, "up").unwrap(),
        Role::parse(&case, "y").unwrap(),
    );
    assert_eq!(
        (gate.buffer.as_str(), gate.offset, gate.extent()),
        ("gate", 0, 9)
    );
    assert_eq!((up.buffer.as_str(), up.offset), ("gate", 3));
    assert_eq!(up.offsets(), [3, 4, 5, 9, 10, 11]);
    assert!(y.same_view(&gate) && !up.same_view(&gate));
}

#[test]
fn dtypes_decode_the_files_bytes() {
    let i64 = Dtype::from_name("i64").unwrap();
    assert_eq!((i64.descr, i64.size), ("<i8", 8));
    assert_eq!(i64.decode(&(-3i64).to_le_bytes()), -3.0);
    assert_eq!(
        Dtype::from_name("i32")
            .unwrap()
            .decode(&(1i32 << 30).to_le_bytes()),
        2f64.powi(30)
    );
    let bf16 = Dtype::from_name("bf16").unwrap();
    assert_eq!(bf16.decode(&0x3fc0u16.to_le_bytes()), 1.5);
    let nan = bf16.nan_buffer(2).unwrap();
    assert!(bf16.decode(&nan[2..]).is_nan());
    assert!(i64.nan_buffer(1).is_err());
    assert!(Dtype::from_name("i4").is_err());
}

#[test]
fn an_expected_infinity_matches_only_itself() {
    let inf = f64::INFINITY;
    assert!(matches(-inf, -inf, 1e-5, 1e-6));
    assert!(matches(inf, inf, 1e-5, 1e-6));
    assert!(!matches(inf, -inf, 1e-5, 1e-6));
    assert!(!matches(-3e38, -inf, 1e-5, 1e-6));
    assert!(!matches(f64::NAN, -inf, 1e-5, 1e-6));
    assert!(!matches(-inf, 0.0, 1e-5, 1e-6));
    assert!(!matches(f64::NAN, f64::NAN, 1e-5, 1e-6));
    assert!(matches(1.0 + 1e-6, 1.0, 1e-5, 1e-6));
    assert!(!matches(1.1, 1.0, 1e-5, 1e-6));
}

#[test]
fn attention_scalars_parse_as_the_c_types() {
    let line = "name=t op=attention causal=1 window_left=4096 window_right=-1 scale=0.125 \
                dropout_seed=9007199254740991 dropout_offset=7.0 max_seqlen_q=1e+3";
    let case = Case::parse(line).unwrap();
    let config = attention_config(&case).unwrap();
    assert!(config.causal);
    assert_eq!(
        (config.window_left, config.window_right),
        (Some(4096), None)
    );
    assert_eq!(config.scale, 0.125);
    assert_eq!(
        (config.dropout_seed, config.dropout_offset),
        ((1 << 53) - 1, 7)
    );
    assert_eq!(integer::<usize>(&case, "max_seqlen_q").unwrap(), 1000);
    let bad = Case::parse("name=t op=attention window_left=-2 dropout_offset=0.5").unwrap();
    assert!(window(&bad, "window_left", None).is_err());
    assert!(integer::<u32>(&bad, "dropout_offset").is_err());
}
