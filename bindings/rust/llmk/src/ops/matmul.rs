//! Matrix multiplication: [`matmul`] (`D = a(alpha * A B + beta * C + bias)`), configured by a
//! [`MatmulConfig`]; [`matmul_path_for`] and [`matmul_cache_stats`] say how the library runs it,
//! and [`matmul_tune`] times cuBLASLt's candidate algorithms for a call and pins the fastest.

use std::mem::MaybeUninit;

use super::{Activation, check_memory, memory_of, raw_or_null};
use crate::context::{Context, Stream};
use crate::error::{Error, Result, Status, check};
use crate::sys;
use crate::tensor::{Memory, TensorMut, TensorRef};

/// The engine of a matmul on a CUDA context: the values of `llmk_matmul_path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MatmulPath {
    /// llmk's choice, as its benchmarks measured: the GEMV where it beats cuBLASLt, else
    /// cuBLASLt.
    Auto,
    /// Always cuBLASLt.
    CublasLt,
    /// llmk's GEMV for decode-sized `M`; a call it cannot take is refused with
    /// [`Status::Unsupported`](crate::Status::Unsupported).
    Gemv,
}

impl MatmulPath {
    /// The `llmk_matmul_path` value.
    pub fn to_raw(self) -> sys::llmk_matmul_path {
        match self {
            Self::Auto => sys::llmk_matmul_path::LLMK_MATMUL_PATH_AUTO,
            Self::CublasLt => sys::llmk_matmul_path::LLMK_MATMUL_PATH_CUBLASLT,
            Self::Gemv => sys::llmk_matmul_path::LLMK_MATMUL_PATH_GEMV,
        }
    }

    /// The path of an `llmk_matmul_path` value, or `None` for one this crate does not know.
    pub fn from_raw(raw: sys::llmk_matmul_path) -> Option<Self> {
        match raw {
            sys::llmk_matmul_path::LLMK_MATMUL_PATH_AUTO => Some(Self::Auto),
            sys::llmk_matmul_path::LLMK_MATMUL_PATH_CUBLASLT => Some(Self::CublasLt),
            sys::llmk_matmul_path::LLMK_MATMUL_PATH_GEMV => Some(Self::Gemv),
            _ => None,
        }
    }

    /// The path of a config field or an answer of the library (an `int32_t`).
    pub(crate) fn from_field(raw: i32) -> Option<Self> {
        u32::try_from(raw)
            .ok()
            .and_then(|raw| Self::from_raw(sys::llmk_matmul_path(raw)))
    }

    pub(crate) fn to_field(self) -> i32 {
        self.to_raw().0 as i32
    }
}

/// The options of [`matmul`] (`llmk_matmul_config`). [`MatmulConfig::default`] holds the
/// library's defaults (`llmk_matmul_config_init`); change the fields that differ:
///
/// ```
/// use llmk::{Activation, MatmulConfig, MatmulPath};
///
/// // D = relu(A B + C), accumulating into C.
/// let mut config = MatmulConfig::default();
/// config.beta = 1.0;
/// config.activation = Activation::Relu;
/// assert_eq!((config.alpha, config.allow_tf32, config.path), (1.0, false, MatmulPath::Auto));
/// ```
///
/// The library validates the values when [`matmul`] is called.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MatmulConfig {
    /// Scales `A B`. Default 1.
    pub alpha: f32,
    /// Scales `C`; 0 (the default) does not read `C`.
    pub beta: f32,
    /// Applied last, after the bias. Default [`Activation::Identity`].
    pub activation: Activation,
    /// Lets cuBLASLt round F32 inputs to TF32 (10-bit mantissa) on tensor cores. Default
    /// `false`.
    pub allow_tf32: bool,
    /// The engine on a CUDA context (ignored on the CPU). Default [`MatmulPath::Auto`].
    pub path: MatmulPath,
}

impl Default for MatmulConfig {
    /// The library's defaults, from `llmk_matmul_config_init`.
    fn default() -> Self {
        let raw = matmul_init_raw();
        let activation = u32::try_from(raw.activation)
            .ok()
            .and_then(|raw| Activation::from_raw(sys::llmk_activation(raw)));
        Self {
            alpha: raw.alpha,
            beta: raw.beta,
            // The defaults come from a library of this crate's ABI (checked when a context is
            // created), whose default activation and path this crate knows.
            activation: activation.expect("llmk_matmul_config_init sets a known activation"),
            allow_tf32: raw.allow_tf32 != 0,
            path: MatmulPath::from_field(raw.path)
                .expect("llmk_matmul_config_init sets a known path"),
        }
    }
}

impl MatmulConfig {
    /// The `llmk_matmul_config` to pass: `llmk_matmul_config_init`'s, so that `struct_size` and
    /// any field this crate does not know keep the library's values, overwritten by these fields.
    pub fn to_raw(&self) -> sys::llmk_matmul_config {
        sys::llmk_matmul_config {
            alpha: self.alpha,
            beta: self.beta,
            activation: self.activation.to_raw().0 as i32,
            allow_tf32: i32::from(self.allow_tf32),
            path: self.path.to_field(),
            ..matmul_init_raw()
        }
    }
}

fn matmul_init_raw() -> sys::llmk_matmul_config {
    let mut raw = MaybeUninit::<sys::llmk_matmul_config>::uninit();
    // SAFETY: llmk_matmul_config_init fills every field of the struct it is given.
    unsafe {
        sys::llmk_matmul_config_init(raw.as_mut_ptr());
        raw.assume_init()
    }
}

/// `D = a(alpha * A B + beta * C + bias)`, with `a` = `A`, `b` = `B`, `c` = `C` (`None` when
/// `beta` is 0: it is not read), `bias` (`None` for no bias), `d` = `D`, and the activation `a`,
/// `alpha` and `beta` from `config`.
///
/// - `A`: `[M, K]`, `B`: `[K, N]`, `C` and `D`: `[M, N]`, or `[batch, ...]` of each (below);
///   `bias`: `[N]`, contiguous, added to every row of `D`.
/// - One dtype for every tensor: F32, F16 or BF16. Accumulation is f32 (f64 on the CPU), and
///   each element of `D` is rounded once. F32 inputs are multiplied in full f32 unless
///   [`MatmulConfig::allow_tf32`].
/// - Layouts come from the strides, nothing is copied: every matrix is row-major (its last
///   dimension has stride 1) or column-major (its second-to-last has), with a leading dimension
///   (the other stride) at least its extent. A transposed view is just the other of the two:
///   `nn.Linear`'s `y = x W^T`, with `W` `[N, K]` row-major, is `B` = the view of `W` with shape
///   `[K, N]` and strides `[1, K]`. A view that is neither is refused
///   ([`Status::NotContiguous`] or [`Status::InvalidStride`]), and so is a bias with a
///   column-major `D` ([`Status::Unsupported`]). `C` has the layout (row- or column-major) of
///   `D`, with its own leading dimension.
/// - Batches: a `D` of rank 3 is a batch of products. `A`, `B` and `C` have rank 3 with the same
///   batch, each with its own batch stride (0 repeats one matrix), or rank 2 (one matrix for
///   every product). `D`'s batches may not overlap.
/// - `d` overlaps nothing (for `D` = `C` use [`matmul_in_place`]). `M`, `N` or `batch` 0 is a
///   successful no-op; `K == 0` is refused with [`Status::Unsupported`].
///
/// On a CUDA context the engine is cuBLASLt, or for decode-sized `M` (a few rows) llmk's own
/// GEMV; [`MatmulConfig::path`] picks one ([`MatmulPath`]), [`matmul_path_for`] says which a call
/// takes, and `include/llmk.h` says where the GEMV can run. The context caches cuBLASLt's plans
/// per shape ([`matmul_cache_stats`]): the heuristic's answer or, once [`matmul_tune`] has timed
/// the candidates for a shape, the fastest. It sets aside 32 MiB of cuBLASLt workspace per stream
/// on the first cuBLASLt matmul on that stream: before capturing a stream into a CUDA graph, run
/// one matmul on it (a capture that would need to set it aside is refused with
/// [`Status::Unsupported`]).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    ctx: &Context,
    config: &MatmulConfig,
    a: &TensorRef<'_>,
    b: &TensorRef<'_>,
    c: Option<&TensorRef<'_>>,
    bias: Option<&TensorRef<'_>>,
    d: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    call(
        ctx,
        config,
        a,
        b,
        Addend::Separate(c),
        bias,
        d,
        stream,
        None,
    )
}

/// [`matmul`] with `C` = `D`: `d = a(alpha * A B + beta * d + bias)` in place (`d` is read only
/// when `beta` is not 0).
pub fn matmul_in_place(
    ctx: &Context,
    config: &MatmulConfig,
    a: &TensorRef<'_>,
    b: &TensorRef<'_>,
    bias: Option<&TensorRef<'_>>,
    d: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    call(ctx, config, a, b, Addend::D, bias, d, stream, None)
}

/// What [`matmul_tune`] measured (`llmk_matmul_tuning`): all 0 where there was nothing to tune
/// (a CPU context, a call that takes the GEMV, an empty product).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MatmulTuning {
    /// cuBLASLt algorithms timed (up to 8); 0 where there was nothing to tune.
    pub candidates: u32,
    /// The pinned algorithm's rank in the heuristic's order; 0 is its first choice.
    pub chosen: u32,
    /// The median time of one GEMM with the heuristic's first algorithm, in microseconds.
    pub first_us: f32,
    /// The same with the pinned algorithm; `first_us` when `chosen` is 0.
    pub chosen_us: f32,
}

impl MatmulTuning {
    /// The `llmk_matmul_tuning` to pass: `struct_size` set to its size, so that the library
    /// writes every field, and the fields 0.
    fn out_raw() -> sys::llmk_matmul_tuning {
        sys::llmk_matmul_tuning {
            struct_size: std::mem::size_of::<sys::llmk_matmul_tuning>(),
            candidates: 0,
            chosen: 0,
            first_us: 0.0,
            chosen_us: 0.0,
        }
    }

    fn from_raw(raw: &sys::llmk_matmul_tuning) -> Self {
        // Never negative from the library: a count and a rank.
        Self {
            candidates: raw.candidates as u32,
            chosen: raw.chosen as u32,
            first_us: raw.first_us,
            chosen_us: raw.chosen_us,
        }
    }
}

/// [`matmul`], with cuBLASLt's algorithm chosen by timing instead of by its heuristic. Where the
/// call takes cuBLASLt, the library asks the heuristic for up to 8 algorithms, times each on
/// `stream`, and pins the fastest in the context's plan cache for this call's shape, layouts,
/// dtype, epilogue and alignments (of the data pointers): every later [`matmul`] with the same
/// key runs it, with no further heuristic query ([`matmul_cache_stats`]). The heuristic's first
/// choice stays unless another is at least 2% faster. Then it computes `D` as [`matmul`] does,
/// and returns what it measured ([`MatmulTuning`]).
///
/// The arguments are [`matmul`]'s, checked as it checks them (for `D` = `C` use
/// [`matmul_tune_in_place`]); the candidates write into `d`.
///
/// A start-up call, not a hot-path one: it synchronizes `stream` and allocates, and a stream
/// being captured into a CUDA graph is refused with [`Status::Unsupported`]. Tuning a key again
/// re-times it. The times are of the GEMM alone (with GELU or SiLU, not the activation pass after
/// it). On a CPU context, and where the call takes the GEMV, there is nothing to tune: it is
/// [`matmul`], and returns [`MatmulTuning::default`] (0 candidates, 0 times).
#[allow(clippy::too_many_arguments)]
pub fn matmul_tune(
    ctx: &Context,
    config: &MatmulConfig,
    a: &TensorRef<'_>,
    b: &TensorRef<'_>,
    c: Option<&TensorRef<'_>>,
    bias: Option<&TensorRef<'_>>,
    d: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<MatmulTuning> {
    let mut tuning = MatmulTuning::out_raw();
    call(
        ctx,
        config,
        a,
        b,
        Addend::Separate(c),
        bias,
        d,
        stream,
        Some(&mut tuning),
    )?;
    Ok(MatmulTuning::from_raw(&tuning))
}

/// [`matmul_tune`] with `C` = `D`, as [`matmul_in_place`]: `d = a(alpha * A B + beta * d + bias)`
/// in place, with the algorithm chosen by timing. `d` is read only when `beta` is not 0, and then
/// once, as by [`matmul_in_place`]: the candidates write into scratch memory the size of `D` that
/// the call allocates and frees (with `beta` 0, into `d`).
pub fn matmul_tune_in_place(
    ctx: &Context,
    config: &MatmulConfig,
    a: &TensorRef<'_>,
    b: &TensorRef<'_>,
    bias: Option<&TensorRef<'_>>,
    d: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<MatmulTuning> {
    let mut tuning = MatmulTuning::out_raw();
    call(
        ctx,
        config,
        a,
        b,
        Addend::D,
        bias,
        d,
        stream,
        Some(&mut tuning),
    )?;
    Ok(MatmulTuning::from_raw(&tuning))
}

/// Where `C` comes from in a call: a view of its own (or none), or `D` itself (in place).
enum Addend<'a, 'b> {
    Separate(Option<&'a TensorRef<'b>>),
    D,
}

/// [`matmul`], [`matmul_in_place`] and, with `tuning`, the two tuning forms: the memory-space
/// check, then `llmk_matmul` or `llmk_matmul_tune`.
#[allow(clippy::too_many_arguments)]
fn call(
    ctx: &Context,
    config: &MatmulConfig,
    a: &TensorRef<'_>,
    b: &TensorRef<'_>,
    c: Addend<'_, '_>,
    bias: Option<&TensorRef<'_>>,
    d: &mut TensorMut<'_>,
    stream: Stream,
    tuning: Option<&mut sys::llmk_matmul_tuning>,
) -> Result<()> {
    let op = if tuning.is_some() {
        "matmul_tune"
    } else {
        "matmul"
    };
    // In place, C is D: checked once, as d.
    let c_memory = match c {
        Addend::Separate(c) => memory_of(c),
        Addend::D => Memory::Unchecked,
    };
    check_memory(
        ctx,
        op,
        &[
            ("a", a.memory()),
            ("b", b.memory()),
            ("c", c_memory),
            ("bias", memory_of(bias)),
            ("d", d.memory()),
        ],
    )?;
    let c = match c {
        Addend::Separate(c) => raw_or_null(c),
        Addend::D => d.as_raw(),
    };
    let config = config.to_raw();
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract; a
    // NULL c or bias is the C API's "none", and d passed as c is the in-place use the library
    // allows. The config outlives the call; `tuning` is a valid out-pointer whose struct_size is
    // its size (MatmulTuning::out_raw).
    check(unsafe {
        match tuning {
            None => sys::llmk_matmul(
                ctx.as_raw(),
                &config,
                a.as_raw(),
                b.as_raw(),
                c,
                raw_or_null(bias),
                d.as_raw(),
                stream.as_raw(),
            ),
            Some(tuning) => sys::llmk_matmul_tune(
                ctx.as_raw(),
                &config,
                a.as_raw(),
                b.as_raw(),
                c,
                raw_or_null(bias),
                d.as_raw(),
                stream.as_raw(),
                tuning,
            ),
        }
    })
}

/// The engine [`matmul`] would take for these arguments on a CUDA context:
/// [`MatmulPath::CublasLt`] or [`MatmulPath::Gemv`], never [`MatmulPath::Auto`]. The arguments
/// are checked as [`matmul`] checks them, and nothing is read or written. On a CPU context the
/// answer is the CUDA one for a device like the H200 llmk is tuned on.
///
/// `d` is only inspected, so it is a [`TensorRef`]: the same view as `c` for an in-place call, or
/// [`TensorMut::view`] of the output.
pub fn matmul_path_for(
    ctx: &Context,
    config: &MatmulConfig,
    a: &TensorRef<'_>,
    b: &TensorRef<'_>,
    c: Option<&TensorRef<'_>>,
    bias: Option<&TensorRef<'_>>,
    d: &TensorRef<'_>,
) -> Result<MatmulPath> {
    check_memory(
        ctx,
        "matmul_path_for",
        &[
            ("a", a.memory()),
            ("b", b.memory()),
            ("c", memory_of(c)),
            ("bias", memory_of(bias)),
            ("d", d.memory()),
        ],
    )?;
    let config = config.to_raw();
    let mut path = -1;
    // SAFETY: the views and the config outlive the call, which reads no tensor data; `path` is
    // a valid out-pointer.
    check(unsafe {
        sys::llmk_matmul_path_for(
            ctx.as_raw(),
            &config,
            a.as_raw(),
            b.as_raw(),
            raw_or_null(c),
            raw_or_null(bias),
            d.as_raw(),
            &mut path,
        )
    })?;
    MatmulPath::from_field(path).ok_or_else(|| {
        Error::new(
            Status::Internal,
            format!("matmul_path_for: the library answered path {path}, unknown to this crate"),
        )
    })
}

/// What a context's matmul plan cache has done so far ([`matmul_cache_stats`]); all 0 on a CPU
/// context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MatmulCacheStats {
    /// Distinct plans cached (per shape, layout, dtype and epilogue).
    pub plans: u64,
    /// cuBLASLt heuristic queries made: one per plan.
    pub heuristic_queries: u64,
    /// cuBLASLt workspaces set aside: one per stream.
    pub workspaces: u64,
}

/// The counters of `ctx`'s matmul plan cache: a second call of one shape must not add a plan or a
/// heuristic query.
pub fn matmul_cache_stats(ctx: &Context) -> Result<MatmulCacheStats> {
    let (mut plans, mut queries, mut workspaces) = (0i64, 0i64, 0i64);
    // SAFETY: a live context and valid out-pointers.
    check(unsafe {
        sys::llmk_matmul_cache_stats(ctx.as_raw(), &mut plans, &mut queries, &mut workspaces)
    })?;
    // Never negative from the library: they count.
    Ok(MatmulCacheStats {
        plans: plans as u64,
        heuristic_queries: queries as u64,
        workspaces: workspaces as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_library() {
        let config = MatmulConfig::default();
        assert_eq!((config.alpha, config.beta), (1.0, 0.0));
        assert_eq!(config.activation, Activation::Identity);
        assert!(!config.allow_tf32);
        assert_eq!(config.path, MatmulPath::Auto);
        let raw = config.to_raw();
        assert_eq!(
            raw.struct_size,
            std::mem::size_of::<sys::llmk_matmul_config>()
        );
    }

    #[test]
    fn fields_reach_the_c_struct() {
        let config = MatmulConfig {
            alpha: 0.5,
            beta: 2.0,
            activation: Activation::GeluTanh,
            allow_tf32: true,
            path: MatmulPath::Gemv,
        };
        let raw = config.to_raw();
        assert_eq!((raw.alpha, raw.beta), (0.5, 2.0));
        assert_eq!((raw.activation, raw.allow_tf32, raw.path), (2, 1, 2));
        assert_eq!(MatmulPath::from_field(1), Some(MatmulPath::CublasLt));
        assert_eq!(MatmulPath::from_field(-1), None);
        assert_eq!(MatmulPath::from_field(3), None);
        assert_eq!(
            Activation::from_raw(sys::llmk_activation(3)),
            Some(Activation::Silu)
        );
        assert_eq!(Activation::from_raw(sys::llmk_activation(5)), None);
    }

    #[test]
    fn tuning_comes_from_a_whole_c_struct() {
        let raw = MatmulTuning::out_raw();
        assert_eq!(
            raw.struct_size,
            std::mem::size_of::<sys::llmk_matmul_tuning>()
        );
        assert_eq!(MatmulTuning::from_raw(&raw), MatmulTuning::default());
        let measured = sys::llmk_matmul_tuning {
            candidates: 8,
            chosen: 3,
            first_us: 12.5,
            chosen_us: 10.25,
            ..raw
        };
        assert_eq!(
            MatmulTuning::from_raw(&measured),
            MatmulTuning {
                candidates: 8,
                chosen: 3,
                first_us: 12.5,
                chosen_us: 10.25,
            }
        );
    }

    #[test]
    fn a_cpu_context_tunes_nothing() {
        let ctx = Context::cpu().unwrap();
        let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
        let mut d = [0.0f32; 1];
        let a = TensorRef::contiguous(&a, &[1, 2]).unwrap();
        let b = TensorRef::contiguous(&b, &[2, 1]).unwrap();
        let config = MatmulConfig::default();
        let tuning = matmul_tune(
            &ctx,
            &config,
            &a,
            &b,
            None,
            None,
            &mut TensorMut::contiguous(&mut d, &[1, 1]).unwrap(),
            Stream::DEFAULT,
        )
        .unwrap();
        assert_eq!((tuning, d[0]), (MatmulTuning::default(), 11.0));

        // The C API takes a NULL tuning, and refuses a struct_size too small for `candidates`.
        let raw_config = config.to_raw();
        let d = TensorMut::contiguous(&mut d, &[1, 1]).unwrap();
        let call = |tuning: *mut sys::llmk_matmul_tuning| {
            // SAFETY: a live context, a config from llmk_matmul_config_init, valid host views on
            // a CPU context, and a NULL or valid tuning.
            check(unsafe {
                sys::llmk_matmul_tune(
                    ctx.as_raw(),
                    &raw_config,
                    a.as_raw(),
                    b.as_raw(),
                    std::ptr::null(),
                    std::ptr::null(),
                    d.as_raw(),
                    Stream::DEFAULT.as_raw(),
                    tuning,
                )
            })
        };
        call(std::ptr::null_mut()).unwrap();
        let mut short = MatmulTuning::out_raw();
        short.struct_size = std::mem::size_of::<usize>();
        let error = call(&mut short).unwrap_err();
        assert_eq!(error.status(), Status::InvalidValue, "{error}");
        assert!(error.message().contains("tuning->struct_size"), "{error}");
    }

    #[test]
    fn a_cpu_context_caches_no_plans() {
        let ctx = Context::cpu().unwrap();
        assert_eq!(
            matmul_cache_stats(&ctx).unwrap(),
            MatmulCacheStats::default()
        );
        // The C API lets each out-pointer be NULL; the wrapper always asks for all three.
        // SAFETY: a live context; NULL out-pointers are allowed.
        check(unsafe {
            sys::llmk_matmul_cache_stats(
                ctx.as_raw(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })
        .unwrap();
    }
}
