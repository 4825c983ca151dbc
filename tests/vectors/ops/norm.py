"""Vectors of rms_norm, add_rms_norm and layer_norm."""
import numpy as np

from vectorlib import Case, contiguous, round_to

def rms_norm_ref(x, weight, eps):
    mean_square = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(mean_square + eps) * weight


def layer_norm_ref(x, weight, bias, eps):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * weight
    return y if bias is None else y + bias


# A norm case's geometry: the shape of x, and the strides of x and y (y=None: in place).
class Geometry:
    def __init__(self, label, shape, x_strides, y_strides, residual_strides=None):
        self.label = label
        self.shape = shape
        self.x_strides = x_strides
        self.y_strides = y_strides
        self.residual_strides = residual_strides or x_strides


def geometries(large_hidden):
    g = []
    g.append(Geometry("r1_h1", (1, 1), (1, 1), (1, 1)))
    g.append(Geometry("r5_h3_strided", (5, 3), (5, 1), (4, 1), (7, 1)))
    g.append(Geometry("r7_h17_inplace", (7, 17), (20, 1), None, (17, 1)))
    g.append(Geometry("r2_h4095_strided", (2, 4095), (4100, 1), (4097, 1), (4104, 1)))
    g.append(Geometry("r2_h4096_inplace_strided", (2, 4096), (4160, 1), None, (4104, 1)))
    g.append(Geometry(f"r1_h{large_hidden}", (1, large_hidden), contiguous((1, large_hidden)),
                      contiguous((1, large_hidden))))
    # Leading dimensions that cannot be merged into one row stride: [batch, seq, hidden] views.
    g.append(Geometry("b2_s3_h64_3d", (2, 3, 64), (3 * 72 + 8, 72, 1), (3 * 64 + 64, 64, 1),
                      (3 * 80, 80, 1)))
    return g


LARGE_HIDDEN = [5120, 8192, 11008, 16384]
DTYPES = ["f32", "f16", "bf16"]


def cases():
    cases = []
    for op_index, op in enumerate(["rms_norm", "add_rms_norm", "layer_norm"]):
        for dtype_index, dtype in enumerate(DTYPES):
            large = LARGE_HIDDEN[(op_index * len(DTYPES) + dtype_index) % len(LARGE_HIDDEN)]
            for geometry_index, geo in enumerate(geometries(large)):
                case = Case(op, dtype, geo.label)
                hidden = geo.shape[-1]
                # A single element makes eps matter; elsewhere the usual model values.
                eps = 0.5 if hidden == 1 else (1e-5 if op == "layer_norm" else 1e-6)

                x = case.input("x", geo.shape, geo.x_strides, scale=1.5, offset=0.25)
                if op == "add_rms_norm":
                    residual = case.input("residual", geo.shape, geo.residual_strides)
                weight = case.input("weight", (hidden,), (1,), scale=0.2, offset=1.0)
                bias = None
                if op == "layer_norm" and geometry_index % 2 == 0:
                    bias = case.input("bias", (hidden,), (1,), scale=0.1)
                case.scalar("eps", eps)

                if op == "rms_norm":
                    y = rms_norm_ref(x, weight, eps)
                elif op == "add_rms_norm":
                    summed = round_to(dtype, x + residual)
                    case.expect("residual", summed)
                    y = rms_norm_ref(summed, weight, eps)
                else:
                    y = layer_norm_ref(x, weight, bias, eps)

                if geo.y_strides is None:
                    case.alias("y", "x", geo.shape, geo.x_strides, y)
                else:
                    case.output("y", geo.shape, geo.y_strides, y)
                cases.append(case)
    return cases


