"""Vectors of adamw_step: one step of torch.optim.AdamW, checked against the header's formulas in
float64.

param, exp_avg and exp_avg_sq are F32 and updated in place; grad is F32, F16 or BF16 (the case's
dtype). The moments come from a simulated history of the step's earlier gradients, so they relate
as they do in training (exp_avg_sq >= 0 and of the size of exp_avg^2), and are zero at step 1.

Tolerances (f32 outputs; the kernel computes in f32, in torch's order of operations):
- rtol 1e-5 against each output's own size, as for every f32 output (README.md).
- exp_avg = beta1 m + (1 - beta1) g can cancel: its rounding errors are a few ulp of |m| and |g|,
  so atol.exp_avg = 1e-6 * grad_scale. exp_avg_sq sums two nonnegative terms and needs no more
  than rtol; its atol (1e-6 * grad_scale^2) only covers values that round to near zero.
- param's update, step_size * exp_avg / denom, inherits exp_avg's absolute error, divided by
  denom ~ sqrt(exp_avg_sq): a few ulp of step_size, so atol.param = 1e-5 * step_size.
check_tolerance() asserts that an f32 evaluation of the kernel's formulas meets these bounds on
every case, with room to spare.
"""
import numpy as np

from vectorlib import Case, contiguous, round_to

OP = "adamw_step"
GRAD_DTYPES = ["f32", "f16", "bf16"]
STATE_DTYPE = "f32"


class Config:
    def __init__(self, label, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                 step=1, grad_scale=1e-2):
        self.label = label
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay, self.step, self.grad_scale = weight_decay, step, grad_scale

    def step_size(self):
        return self.lr / (1.0 - self.beta1 ** self.step)

    def scalars(self):
        """The config fields that differ from llmk_adamw_config_init's defaults."""
        defaults = Config("defaults")
        return {key: getattr(self, key)
                for key in ["lr", "beta1", "beta2", "eps", "weight_decay", "step"]
                if getattr(self, key) != getattr(defaults, key)}


CONFIGS = [
    Config("default_step1"),
    Config("default_step7", step=7),
    Config("no_decay_step3", lr=3e-4, weight_decay=0.0, step=3, grad_scale=1.0),
    # w = 1 - beta1 >= 0.5 takes torch's other lerp formula, grad - (grad - m) * (1 - w).
    Config("beta1_03_beta2_095_step7", lr=1e-2, beta1=0.3, beta2=0.95, eps=1e-6,
           weight_decay=0.1, step=7, grad_scale=1.0),
    Config("betas_0_step2", lr=5e-3, beta1=0.0, beta2=0.0, eps=1e-3, step=2),
    Config("step1000", lr=1e-4, beta2=0.98, weight_decay=0.05, step=1000, grad_scale=0.1),
]


class Geometry:
    """The shape, and the strides of param, grad, exp_avg and exp_avg_sq."""

    def __init__(self, label, shape, param=None, grad=None, exp_avg=None, exp_avg_sq=None):
        self.label = label
        self.shape = shape
        dense = contiguous(shape)
        self.strides = {"param": param or dense, "grad": grad or dense,
                        "exp_avg": exp_avg or dense, "exp_avg_sq": exp_avg_sq or dense}


def geometries(dtype):
    # One long row per dtype, cut into several column chunks on a GPU; 16-bit grads take a
    # shorter one to keep the data small.
    long_row = 4097 if dtype == "f32" else 2053
    return [
        Geometry("n1", (1,)),
        Geometry("n3", (3,)),
        Geometry("n17", (17,)),
        Geometry(f"n{long_row}", (long_row,)),
        Geometry("r4_n64", (4, 64)),
        # Row strides that keep no 16-byte alignment, each tensor its own.
        Geometry("r5_n17_strided", (5, 17), param=(20, 1), exp_avg=(24, 1), exp_avg_sq=(19, 1)),
        # Aligned row strides around rows of 33: whole packs and one element left over per row.
        Geometry("r3_n33_strided", (3, 33), param=(36, 1), grad=(40, 1), exp_avg=(36, 1),
                 exp_avg_sq=(44, 1)),
        # Leading dimensions that merge into two strided ones.
        Geometry("b2_s3_n8_3d", (2, 3, 8), param=(40, 12, 1), grad=(32, 8, 1),
                 exp_avg_sq=(48, 16, 1)),
    ]


def history(config, shape, rng):
    """exp_avg and exp_avg_sq after config.step - 1 earlier steps (at most 20 simulated) of
    gradients with a per-element mean, in float64."""
    scale = config.grad_scale
    mean = 0.5 * scale * rng.standard_normal(shape)
    m, v = np.zeros(shape), np.zeros(shape)
    for _ in range(min(config.step - 1, 20)):
        g = mean + scale * rng.standard_normal(shape)
        m = config.beta1 * m + (1 - config.beta1) * g
        v = config.beta2 * v + (1 - config.beta2) * g * g
    return m, v


def adamw_ref(config, param, grad, exp_avg, exp_avg_sq):
    """The header's formulas in float64."""
    param = param * (1.0 - config.lr * config.weight_decay)
    exp_avg = config.beta1 * exp_avg + (1.0 - config.beta1) * grad
    exp_avg_sq = config.beta2 * exp_avg_sq + (1.0 - config.beta2) * grad * grad
    bias_correction2_sqrt = np.sqrt(1.0 - config.beta2 ** config.step)
    denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + config.eps
    return param - config.step_size() * exp_avg / denom, exp_avg, exp_avg_sq


def adamw_f32(config, param, grad, exp_avg, exp_avg_sq):
    """The kernel's sequence in f32: each operation rounded, an FMA rounded once."""
    f = np.float32
    param, grad, m, v = (x.astype(f) for x in (param, grad, exp_avg, exp_avg_sq))

    def fma(a, b, c):
        return (a.astype(np.float64) * b + c).astype(f)

    param = param * f(1.0 - config.lr * config.weight_decay)
    w = f(1.0 - config.beta1)
    m = fma(w, grad - m, m) if w < 0.5 else fma(m - grad, f(1) - w, grad)
    v = fma(f(1.0 - config.beta2), grad * grad, v * f(config.beta2))
    inv_bc2_sqrt = f(1.0 / np.sqrt(1.0 - config.beta2 ** config.step))
    denom = np.sqrt(v) * inv_bc2_sqrt + f(config.eps)
    return fma(f(-config.step_size()), m / denom, param), m, v


def tolerances(config):
    """(rtol, atol) of param, exp_avg and exp_avg_sq, as the module docstring derives them."""
    scale = config.grad_scale
    return {"param": (1e-5, 1e-5 * config.step_size()), "exp_avg": (1e-5, 1e-6 * scale),
            "exp_avg_sq": (1e-5, 1e-6 * scale * scale)}


def check_tolerance(case, config, inputs, expected):
    got = adamw_f32(config, *inputs)
    for role, want, value in zip(["param", "exp_avg", "exp_avg_sq"], expected, got):
        rtol, atol = tolerances(config)[role]
        # A quarter of the tolerance: the GPU's FMAs may round differently from numpy's.
        excess = np.abs(value - want) - 0.25 * (atol + rtol * np.abs(want))
        assert np.all(excess <= 0), f"{case.name}: f32 {role} off by more than its tolerance"


def cases():
    cases = []
    for dtype_index, dtype in enumerate(GRAD_DTYPES):
        for geometry_index, geo in enumerate(geometries(dtype)):
            config = CONFIGS[(geometry_index + dtype_index) % len(CONFIGS)]
            case = Case(OP, dtype, f"{geo.label}_{config.label}")
            strides = geo.strides
            m, v = history(config, geo.shape, case.rng)
            param = case.input("param", geo.shape, strides["param"], scale=0.5,
                               dtype=STATE_DTYPE)
            grad = case.input("grad", geo.shape, strides["grad"], scale=config.grad_scale)
            exp_avg = case.values("exp_avg", m, strides["exp_avg"], dtype=STATE_DTYPE)
            exp_avg_sq = case.values("exp_avg_sq", v, strides["exp_avg_sq"], dtype=STATE_DTYPE)
            for key, value in config.scalars().items():
                case.scalar(key, value)

            inputs = (param, grad, exp_avg, exp_avg_sq)
            expected = adamw_ref(config, *inputs)
            check_tolerance(case, config, inputs, expected)
            for role, values in zip(["param", "exp_avg", "exp_avg_sq"], expected):
                rtol, atol = tolerances(config)[role]
                case.expect(role, values, dtype=STATE_DTYPE, rtol=rtol, atol=atol)
            cases.append(case)
    return cases
