//! `matmul_tune` and `matmul_tune_in_place`: on the CPU context they are `matmul` and
//! `matmul_in_place`, bit for bit, and tune nothing; on CUDA device 0, when there is a GPU, an
//! f16 GEMM with a bias and GELU_TANH is tuned, its D matches the CPU's, what it measured makes
//! sense, the matmul after it asks the heuristic nothing, the in-place form reads D once, and a
//! call that takes the GEMV tunes nothing. (Refused arguments: `tests/op_errors.rs`.)
//!
//! GPU against CPU is the rule of `tests/ops/matmul_gpu_test.cu` (`tests/vectors/README.md`,
//! "matmul, ffn and gated_mlp"): elementwise `|gpu - cpu| <= atol + rtol |cpu|`, rtol = 2^-10
//! for f16, and atol = 1e-5 plus the largest over D's elements of
//! `L ((K + 2) 2^-24 S) [+ L u S with C, a bias or an activation]`, with
//! `S = |alpha| sum_k |a_ik b_kj| + |beta c_ij| + |bias_j|`, `L = max |a'|` and `u = 2^-11`.

mod common;

use common::{announce, values};
use llmk::{
    Activation, Context, DeviceBuffer, F16, MatmulCacheStats, MatmulConfig, MatmulPath,
    MatmulTuning, Stream, TensorMut, TensorRef,
};

const S: Stream = Stream::DEFAULT;
/// What D holds before a call: NaN, so that an element left unwritten fails.
const NAN: F16 = F16::from_bits(0x7e00);

fn cpu() -> Context {
    Context::cpu().expect("CPU context")
}

/// `D = a(alpha A B + beta C + bias)` on nn.Linear's layout: A `[M, K]` row-major, B the
/// transposed view of a weight W `[N, K]` row-major (strides `[1, K]`), C and D `[M, N]`
/// row-major, bias `[N]`. B's scale keeps A B near unit variance, as in the C++ tests.
struct Gemm {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<F16>,
    w: Vec<F16>,
    bias: Vec<F16>,
    c: Vec<F16>,
    /// `sum_k |a_ik b_kj|` of each element of D, row-major.
    products: Vec<f64>,
}

impl Gemm {
    fn new(m: usize, k: usize, n: usize) -> Self {
        let (a, w) = (
            values(m * k, 1, 1.0),
            values(n * k, 2, 1.5 / (k as f32).sqrt()),
        );
        let (a_abs, w_abs) = (abs(&a), abs(&w));
        let products = (0..m * n)
            .map(|e| {
                let (row, col) = (e / n, e % n);
                let a_row = &a_abs[row * k..(row + 1) * k];
                let w_row = &w_abs[col * k..(col + 1) * k];
                a_row.iter().zip(w_row).map(|(x, y)| x * y).sum()
            })
            .collect();
        Self {
            m,
            k,
            n,
            a,
            w,
            bias: values(n, 3, 0.5),
            c: values(m * n, 4, 1.0),
            products,
        }
    }

    fn a_shape(&self) -> ([usize; 2], [usize; 2]) {
        ([self.m, self.k], [self.k, 1])
    }

    fn b_shape(&self) -> ([usize; 2], [usize; 2]) {
        ([self.k, self.n], [1, self.k])
    }

    fn d_shape(&self) -> ([usize; 2], [usize; 2]) {
        ([self.m, self.n], [self.n, 1])
    }

    /// D on the CPU context (f64 sums, each element rounded once), with C when `with_c`.
    fn on_cpu(&self, config: &MatmulConfig, with_c: bool) -> Vec<F16> {
        let ctx = cpu();
        let ((a_shape, a_strides), (b_shape, b_strides)) = (self.a_shape(), self.b_shape());
        let (d_shape, d_strides) = self.d_shape();
        let c = TensorRef::new(&self.c, &d_shape, &d_strides).unwrap();
        let mut d = vec![NAN; self.m * self.n];
        llmk::matmul(
            &ctx,
            config,
            &TensorRef::new(&self.a, &a_shape, &a_strides).unwrap(),
            &TensorRef::new(&self.w, &b_shape, &b_strides).unwrap(),
            with_c.then_some(&c),
            Some(&TensorRef::contiguous(&self.bias, &[self.n]).unwrap()),
            &mut TensorMut::new(&mut d, &d_shape, &d_strides).unwrap(),
            S,
        )
        .expect("matmul on the CPU");
        d
    }

    /// The atol of the rule in this file's header for `config` (with the bias, always there), with
    /// C when `with_c`.
    fn atol(&self, config: &MatmulConfig, with_c: bool) -> f64 {
        let slope = match config.activation {
            Activation::Identity | Activation::Relu => 1.0,
            Activation::Silu => 1.1,
            _ => 1.13, // GELU and GELU_TANH
        };
        let (bias, c) = (abs(&self.bias), abs(&self.c));
        let beta = if with_c {
            f64::from(config.beta).abs()
        } else {
            0.0
        };
        let worst = (0..self.m * self.n)
            .map(|e| {
                let magnitude = f64::from(config.alpha).abs() * self.products[e]
                    + beta * c[e]
                    + bias[e % self.n];
                // f32 accumulation, and the rounding before the bias epilogue.
                slope * ((self.k + 2) as f64 * 2f64.powi(-24) + 2f64.powi(-11)) * magnitude
            })
            .fold(0.0, f64::max);
        1e-5 + worst
    }
}

fn abs(values: &[F16]) -> Vec<f64> {
    values.iter().map(|v| f64::from(v.to_f32()).abs()).collect()
}

/// Every element of `got` within `atol + 2^-10 |want|` of `want` (NaN never is).
fn assert_close(what: &str, got: &[F16], want: &[F16], atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let off: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|&(_, (g, w))| {
            let (g, w) = (f64::from(g.to_f32()), f64::from(w.to_f32()));
            let close = g.is_finite() && (g - w).abs() <= atol + 2f64.powi(-10) * w.abs();
            !close
        })
        .map(|(i, (g, w))| format!("[{i}] {g} vs {w}"))
        .collect();
    assert!(
        off.is_empty(),
        "{what}: {} of {} elements off (atol {atol}, rtol 2^-10), the first: {}",
        off.len(),
        got.len(),
        off[..off.len().min(8)].join(", ")
    );
}

fn bits(values: &[F16]) -> Vec<u16> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// On the CPU there is nothing to tune: the same D as matmul's, bit for bit, 0 candidates and
/// 0 times, separate C or in place, and no plan cached.
#[test]
fn matmul_tune_on_the_cpu_is_matmul() {
    let ctx = cpu();
    let g = Gemm::new(7, 40, 24);
    let mut config = MatmulConfig::default();
    config.alpha = 0.75;
    config.beta = 0.5;
    config.activation = Activation::GeluTanh;
    let ((a_shape, a_strides), (b_shape, b_strides)) = (g.a_shape(), g.b_shape());
    let (d_shape, d_strides) = g.d_shape();
    let a = TensorRef::new(&g.a, &a_shape, &a_strides).unwrap();
    let b = TensorRef::new(&g.w, &b_shape, &b_strides).unwrap();
    let c = TensorRef::new(&g.c, &d_shape, &d_strides).unwrap();
    let bias = TensorRef::contiguous(&g.bias, &[g.n]).unwrap();

    let mut plain = vec![NAN; g.m * g.n];
    llmk::matmul(
        &ctx,
        &config,
        &a,
        &b,
        Some(&c),
        Some(&bias),
        &mut TensorMut::new(&mut plain, &d_shape, &d_strides).unwrap(),
        S,
    )
    .unwrap();
    let mut tuned = vec![NAN; g.m * g.n];
    let tuning = llmk::matmul_tune(
        &ctx,
        &config,
        &a,
        &b,
        Some(&c),
        Some(&bias),
        &mut TensorMut::new(&mut tuned, &d_shape, &d_strides).unwrap(),
        S,
    )
    .unwrap();
    assert_eq!(tuning, MatmulTuning::default());
    assert!(plain.iter().all(|v| !v.to_f32().is_nan()), "{plain:?}");
    assert_eq!(
        bits(&tuned),
        bits(&plain),
        "matmul_tune's D is not matmul's"
    );

    // In place, D = C: the same D again.
    let mut plain_in_place = g.c.clone();
    llmk::matmul_in_place(
        &ctx,
        &config,
        &a,
        &b,
        Some(&bias),
        &mut TensorMut::new(&mut plain_in_place, &d_shape, &d_strides).unwrap(),
        S,
    )
    .unwrap();
    let mut tuned_in_place = g.c.clone();
    let tuning = llmk::matmul_tune_in_place(
        &ctx,
        &config,
        &a,
        &b,
        Some(&bias),
        &mut TensorMut::new(&mut tuned_in_place, &d_shape, &d_strides).unwrap(),
        S,
    )
    .unwrap();
    assert_eq!(tuning, MatmulTuning::default());
    assert_eq!(bits(&plain_in_place), bits(&plain));
    assert_eq!(
        bits(&tuned_in_place),
        bits(&plain),
        "matmul_tune_in_place's D is not matmul's"
    );
    assert_eq!(
        llmk::matmul_cache_stats(&ctx).unwrap(),
        MatmulCacheStats::default()
    );
}

/// M = 256, K = 512, N = 768 in f16 with a bias and GELU_TANH, on cuBLASLt: tuned, then the
/// same through matmul, then in place with beta 1; and one row of it on the GEMV.
#[test]
fn matmul_tune_on_cuda() {
    if llmk::cuda_device_count().expect("cuda_device_count") == 0 {
        announce("matmul_tune_on_cuda: SKIPPED, no CUDA device (cuda_device_count() is 0)");
        return;
    }
    let gpu = Context::cuda(0).expect("CUDA context on device 0");
    let g = Gemm::new(256, 512, 768);
    let mut config = MatmulConfig::default();
    config.activation = Activation::GeluTanh;
    let ((a_shape, a_strides), (b_shape, b_strides)) = (g.a_shape(), g.b_shape());
    let (d_shape, d_strides) = g.d_shape();
    let a = DeviceBuffer::from_slice(&gpu, &g.a, S).unwrap();
    let w = DeviceBuffer::from_slice(&gpu, &g.w, S).unwrap();
    let bias = DeviceBuffer::from_slice(&gpu, &g.bias, S).unwrap();
    let (a_view, b_view) = (
        a.view(&a_shape, &a_strides).unwrap(),
        w.view(&b_shape, &b_strides).unwrap(),
    );
    let bias_view = bias.view(&[g.n], &[1]).unwrap();
    let nans = vec![NAN; g.m * g.n];
    let mut d = DeviceBuffer::from_slice(&gpu, &nans, S).unwrap();
    let (want, atol) = (g.on_cpu(&config, false), g.atol(&config, false));

    // Tuned: D as matmul computes it, and the candidates' times.
    let tuning = llmk::matmul_tune(
        &gpu,
        &config,
        &a_view,
        &b_view,
        None,
        Some(&bias_view),
        &mut d.view_mut(&d_shape, &d_strides).unwrap(),
        S,
    )
    .expect("matmul_tune");
    assert_close("D of matmul_tune", &d.to_vec(S).unwrap(), &want, atol);
    assert!((1..=8).contains(&tuning.candidates), "{tuning:?}");
    assert!(tuning.chosen < 8, "{tuning:?}");
    assert!(
        tuning.first_us > 0.0 && tuning.first_us.is_finite(),
        "{tuning:?}"
    );
    assert!(
        tuning.chosen_us > 0.0 && tuning.chosen_us <= tuning.first_us,
        "{tuning:?}"
    );
    let tuned = llmk::matmul_cache_stats(&gpu).unwrap();
    assert!(
        tuned.plans >= 1 && tuned.heuristic_queries >= 1 && tuned.workspaces == 1,
        "{tuned:?}"
    );

    // The same call through matmul runs the pinned algorithm: no heuristic query, no new plan.
    d.copy_from_host(&nans, S).unwrap();
    llmk::matmul(
        &gpu,
        &config,
        &a_view,
        &b_view,
        None,
        Some(&bias_view),
        &mut d.view_mut(&d_shape, &d_strides).unwrap(),
        S,
    )
    .expect("matmul after matmul_tune");
    assert_close(
        "D of matmul after tuning",
        &d.to_vec(S).unwrap(),
        &want,
        atol,
    );
    assert_eq!(llmk::matmul_cache_stats(&gpu).unwrap(), tuned);

    // In place with beta = 1, D = C: the candidates must not accumulate into D, which is read
    // once, as by matmul_in_place.
    let mut accumulate = config;
    accumulate.beta = 1.0;
    let mut dc = DeviceBuffer::from_slice(&gpu, &g.c, S).unwrap();
    let tuning = llmk::matmul_tune_in_place(
        &gpu,
        &accumulate,
        &a_view,
        &b_view,
        Some(&bias_view),
        &mut dc.view_mut(&d_shape, &d_strides).unwrap(),
        S,
    )
    .expect("matmul_tune_in_place");
    assert_close(
        "D of matmul_tune_in_place (D = C, beta 1)",
        &dc.to_vec(S).unwrap(),
        &g.on_cpu(&accumulate, true),
        g.atol(&accumulate, true),
    );
    assert!((1..=8).contains(&tuning.candidates), "{tuning:?}");
    assert!(
        tuning.first_us > 0.0 && tuning.chosen_us <= tuning.first_us,
        "{tuning:?}"
    );

    // One row on the GEMV: nothing to tune, and no cuBLASLt plan.
    let mut gemv = config;
    gemv.path = MatmulPath::Gemv;
    let row = a.view(&[1, g.k], &[g.k, 1]).unwrap();
    let mut d_row = DeviceBuffer::from_slice(&gpu, &nans[..g.n], S).unwrap();
    let before = llmk::matmul_cache_stats(&gpu).unwrap();
    let tuning = llmk::matmul_tune(
        &gpu,
        &gemv,
        &row,
        &b_view,
        None,
        Some(&bias_view),
        &mut d_row.view_mut(&[1, g.n], &[g.n, 1]).unwrap(),
        S,
    )
    .expect("matmul_tune on the GEMV");
    assert_eq!(tuning, MatmulTuning::default());
    // Each element of the CPU's D is computed alone: its first row is this call's D.
    assert_close(
        "D of matmul_tune on the GEMV",
        &d_row.to_vec(S).unwrap(),
        &want[..g.n],
        atol,
    );
    assert_eq!(llmk::matmul_cache_stats(&gpu).unwrap(), before);
}
