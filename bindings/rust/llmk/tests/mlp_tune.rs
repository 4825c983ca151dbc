//! `MlpConfig::tune`: on the CPU context it changes nothing, bit for bit; on CUDA device 0, when
//! there is a GPU, a tuned `ffn` and a tuned `gated_mlp` (separate gate and up weights) make
//! their plans (how many depends on which GEMMs share a key: gate and up may, or be one GEMM
//! where their buffers happen to be adjacent), the untuned calls after them make no plan, ask the
//! heuristic nothing and give the tuned call's bits, and y is near the CPU context's.
//!
//! "Near" is a sanity bound, `|gpu - cpu| <= 2^-6 (1 + |cpu|)` elementwise: the engines round the
//! intermediate to f16 at other points than the CPU's reference (2^-11 each) and sum in another
//! order, which stays well inside it at these sizes, while a wrong or unwritten element does not.
//! The exact rule for these blocks is the C++ suite's (`tests/ops/mlp_gpu_test.cu`), which runs
//! the same tuned calls.

mod common;

use common::{announce, values};
use llmk::{
    Activation, Context, DeviceBuffer, F16, MlpConfig, Stream, TensorMut, TensorRef, Workspace,
};

const S: Stream = Stream::DEFAULT;
const NAN: F16 = F16::from_bits(0x7e00);
const TOKENS: usize = 96;
const D_MODEL: usize = 256;
const D_FF: usize = 384;

fn bits(values: &[F16]) -> Vec<u16> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// The block's operands: x `[TOKENS, D_MODEL]`, the input weights `[D_FF, D_MODEL]` (w1, or
/// w_gate and w_up) and the output weight `[D_MODEL, D_FF]`, all row-major.
struct Block {
    gated: bool,
    x: Vec<F16>,
    w_in: Vec<F16>,
    w_up: Vec<F16>,
    w_out: Vec<F16>,
}

impl Block {
    fn new(gated: bool) -> Self {
        let in_scale = 1.5 / (D_MODEL as f32).sqrt();
        Self {
            gated,
            x: values(TOKENS * D_MODEL, 1, 1.0),
            w_in: values(D_FF * D_MODEL, 2, in_scale),
            w_up: values(D_FF * D_MODEL, 3, in_scale),
            w_out: values(D_MODEL * D_FF, 4, 1.5 / (D_FF as f32).sqrt()),
        }
    }

    fn what(&self) -> &'static str {
        if self.gated { "gated_mlp" } else { "ffn" }
    }

    /// One call with these views (of host or device memory alike).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ctx: &Context,
        config: &MlpConfig,
        x: &TensorRef<'_>,
        w_in: &TensorRef<'_>,
        w_up: &TensorRef<'_>,
        w_out: &TensorRef<'_>,
        workspace: &mut Workspace<'_>,
        y: &mut TensorMut<'_>,
    ) {
        let result = if self.gated {
            llmk::gated_mlp(
                ctx,
                config,
                x,
                w_in,
                w_up,
                w_out,
                Activation::Silu,
                workspace,
                y,
                S,
            )
        } else {
            llmk::ffn(
                ctx,
                config,
                x,
                w_in,
                None,
                w_out,
                None,
                Activation::GeluTanh,
                workspace,
                y,
                S,
            )
        };
        result.unwrap_or_else(|e| panic!("{}: {e}", self.what()));
    }

    fn workspace_bytes(&self, ctx: &Context, x: &TensorRef<'_>, w_in: &TensorRef<'_>) -> usize {
        if self.gated {
            llmk::gated_mlp_workspace_size(ctx, x, w_in).unwrap()
        } else {
            llmk::ffn_workspace_size(ctx, x, w_in).unwrap()
        }
    }

    /// y on the CPU context, with `config`.
    fn on_cpu(&self, config: &MlpConfig) -> Vec<F16> {
        let ctx = Context::cpu().expect("CPU context");
        let x = TensorRef::contiguous(&self.x, &[TOKENS, D_MODEL]).unwrap();
        let w_in = TensorRef::contiguous(&self.w_in, &[D_FF, D_MODEL]).unwrap();
        let w_up = TensorRef::contiguous(&self.w_up, &[D_FF, D_MODEL]).unwrap();
        let w_out = TensorRef::contiguous(&self.w_out, &[D_MODEL, D_FF]).unwrap();
        let mut memory = DeviceBuffer::<u8>::from_slice(
            &ctx,
            &vec![0; self.workspace_bytes(&ctx, &x, &w_in)],
            S,
        )
        .unwrap();
        let mut y = vec![NAN; TOKENS * D_MODEL];
        self.run(
            &ctx,
            config,
            &x,
            &w_in,
            &w_up,
            &w_out,
            &mut Workspace::new(&mut memory),
            &mut TensorMut::contiguous(&mut y, &[TOKENS, D_MODEL]).unwrap(),
        );
        y
    }
}

#[test]
fn tune_on_the_cpu_changes_nothing() {
    for gated in [false, true] {
        let block = Block::new(gated);
        let mut tuned = MlpConfig::default();
        tuned.tune = true;
        let plain = block.on_cpu(&MlpConfig::default());
        assert!(
            plain.iter().all(|v| !v.to_f32().is_nan()),
            "{}",
            block.what()
        );
        assert_eq!(
            bits(&block.on_cpu(&tuned)),
            bits(&plain),
            "{}: tune changed y on the CPU",
            block.what()
        );
    }
}

#[test]
fn tune_on_cuda_pins_every_gemm() {
    if llmk::cuda_device_count().expect("cuda_device_count") == 0 {
        announce(
            "tune_on_cuda_pins_every_gemm: SKIPPED, no CUDA device (cuda_device_count() is 0)",
        );
        return;
    }
    for gated in [false, true] {
        // A context of its own, so that the plan counts are this block's.
        let gpu = Context::cuda(0).expect("CUDA context on device 0");
        let block = Block::new(gated);
        let what = block.what();
        let device = |data: &[F16]| DeviceBuffer::from_slice(&gpu, data, S).unwrap();
        let (x, w_in, w_up, w_out) = (
            device(&block.x),
            device(&block.w_in),
            device(&block.w_up),
            device(&block.w_out),
        );
        let x_view = x.view(&[TOKENS, D_MODEL], &[D_MODEL, 1]).unwrap();
        let w_in_view = w_in.view(&[D_FF, D_MODEL], &[D_MODEL, 1]).unwrap();
        let w_up_view = w_up.view(&[D_FF, D_MODEL], &[D_MODEL, 1]).unwrap();
        let w_out_view = w_out.view(&[D_MODEL, D_FF], &[D_FF, 1]).unwrap();
        let bytes = block.workspace_bytes(&gpu, &x_view, &w_in_view);
        let mut memory = DeviceBuffer::<u8>::from_slice(&gpu, &vec![0; bytes], S).unwrap();
        let nans = vec![NAN; TOKENS * D_MODEL];
        let mut y = DeviceBuffer::from_slice(&gpu, &nans, S).unwrap();
        let mut run = |config: &MlpConfig, y: &mut DeviceBuffer<'_, F16>| {
            y.copy_from_host(&nans, S).unwrap();
            block.run(
                &gpu,
                config,
                &x_view,
                &w_in_view,
                &w_up_view,
                &w_out_view,
                &mut Workspace::new(&mut memory),
                &mut y.view_mut(&[TOKENS, D_MODEL], &[D_MODEL, 1]).unwrap(),
            );
            y.to_vec(S).unwrap()
        };

        let mut tune = MlpConfig::default();
        tune.tune = true;
        let tuned = run(&tune, &mut y);
        let stats = llmk::matmul_cache_stats(&gpu).unwrap();
        assert!(
            stats.plans >= 1 && stats.heuristic_queries >= stats.plans,
            "{what}: {stats:?}"
        );
        for _ in 0..2 {
            assert_eq!(
                bits(&run(&MlpConfig::default(), &mut y)),
                bits(&tuned),
                "{what}: an untuned call after the tuning ran another algorithm"
            );
        }
        assert_eq!(llmk::matmul_cache_stats(&gpu).unwrap(), stats, "{what}");

        let want = block.on_cpu(&MlpConfig::default());
        let off = tuned
            .iter()
            .zip(&want)
            .filter(|&(g, w)| {
                let (g, w) = (f64::from(g.to_f32()), f64::from(w.to_f32()));
                !(g.is_finite() && (g - w).abs() <= 2f64.powi(-6) * (1.0 + w.abs()))
            })
            .count();
        assert_eq!(
            off, 0,
            "{what}: {off} elements of the tuned y far from the CPU's"
        );
    }
}
