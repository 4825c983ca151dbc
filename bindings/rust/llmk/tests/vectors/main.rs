//! The shared test vectors (`tests/vectors/README.md`) through the safe API: every case of
//! `manifest.txt` on the CPU context and, when there is a GPU, on CUDA device 0.
//!
//! The vectors are read from `$LLMK_VECTORS_DIR`, else from the source tree the binary was built
//! in; set the variable where the binary runs on another machine.

#[path = "../common/mod.rs"]
mod common;
mod manifest;
mod npy;

use std::error::Error;
use std::path::{Path, PathBuf};

use llmk::{Backend, Bf16, Context, DeviceBuffer, Element, F16, Stream, TensorMut, TensorRef};

use common::announce;
use manifest::Case;
use npy::{Npy, Scalar};

type Outcome<T = ()> = Result<T, Box<dyn Error>>;

/// The tensor roles of the ops, by their argument names in `llmk.h`.
const ROLES: [&str; 5] = ["x", "residual", "weight", "bias", "y"];

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
    announce(&format!(
        "vectors on {on}: {} of {} cases passed ({})",
        cases.len() - failures.len(),
        cases.len(),
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

fn run_case(ctx: &Context, case: &Case, dir: &Path) -> Outcome {
    // The ops take one dtype for all their tensors, so one element type serves the whole case.
    let dtype = case.get("x.dtype")?;
    for role in ROLES {
        if let Some(other) = case.find(&format!("{role}.dtype"))
            && other != dtype
        {
            return Err(format!("{role} is {other} but x is {dtype}: one dtype per case").into());
        }
    }
    match dtype {
        "f32" => run_typed::<f32>(ctx, case, dir),
        "f16" => run_typed::<F16>(ctx, case, dir),
        "bf16" => run_typed::<Bf16>(ctx, case, dir),
        other => Err(format!("dtype {other} is not supported by this runner").into()),
    }
}

fn run_typed<T: Element + Scalar>(ctx: &Context, case: &Case, dir: &Path) -> Outcome {
    let op = case.get("op")?;
    // Parsed as a float64, then passed as the C type.
    let eps = case.get("eps")?.parse::<f64>()? as f32;
    let load = |role: &str| Tensor::<T>::load(ctx, case, dir, role);
    let mut x = load("x")?;
    let weight = load("weight")?;
    // Optional roles: present when the case gives their view.
    let mut residual = case
        .find("residual.shape")
        .map(|_| load("residual"))
        .transpose()?;
    let bias = case.find("bias.shape").map(|_| load("bias")).transpose()?;
    // `y=@x` is the in-place form; any other y is a buffer of its own.
    let mut y = match case.find("y") {
        Some("@x") if Layout::of(case, "y")? == x.layout => None,
        Some("@x") => return Err("y=@x, but y's shape or strides differ from x's".into()),
        _ => Some(load("y")?),
    };

    let stream = Stream::DEFAULT;
    let w = weight.view()?;
    let b = bias.as_ref().map(Tensor::view).transpose()?;
    match (op, y.as_mut(), residual.as_mut()) {
        ("rms_norm", Some(y), None) => {
            llmk::rms_norm(ctx, &x.view()?, &w, eps, &mut y.view_mut()?, stream)
        }
        ("rms_norm", None, None) => {
            llmk::rms_norm_in_place(ctx, &mut x.view_mut()?, &w, eps, stream)
        }
        ("add_rms_norm", Some(y), Some(r)) => llmk::add_rms_norm(
            ctx,
            &x.view()?,
            &mut r.view_mut()?,
            &w,
            eps,
            &mut y.view_mut()?,
            stream,
        ),
        ("add_rms_norm", None, Some(r)) => llmk::add_rms_norm_in_place(
            ctx,
            &mut x.view_mut()?,
            &mut r.view_mut()?,
            &w,
            eps,
            stream,
        ),
        ("layer_norm", Some(y), None) => llmk::layer_norm(
            ctx,
            &x.view()?,
            &w,
            b.as_ref(),
            eps,
            &mut y.view_mut()?,
            stream,
        ),
        ("layer_norm", None, None) => {
            llmk::layer_norm_in_place(ctx, &mut x.view_mut()?, &w, b.as_ref(), eps, stream)
        }
        _ => return Err(format!("op {op} with these roles is not supported").into()),
    }?;
    ctx.synchronize(stream)?;

    // The in-place y is x's buffer.
    let after = [
        ("x", Some(&x)),
        ("residual", residual.as_ref()),
        ("weight", Some(&weight)),
        ("bias", bias.as_ref()),
        ("y", Some(y.as_ref().unwrap_or(&x))),
    ];
    let mut problems = Vec::new();
    for (role, tensor) in after {
        if case.find(&format!("expect.{role}")).is_some() {
            let tensor = tensor.ok_or_else(|| format!("expect.{role}, but no {role}"))?;
            problems.extend(tensor.compare(case, dir, role)?);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

/// The view of a role, in elements.
#[derive(PartialEq)]
struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl Layout {
    fn of(case: &Case, role: &str) -> Outcome<Self> {
        let numbers = |key: String| -> Outcome<Vec<usize>> {
            let text = case.get(&key)?;
            let parse = |n: &str| n.parse().map_err(|e| format!("{key}={text}: {e}").into());
            text.split(',')
                .filter(|n| !n.is_empty())
                .map(parse)
                .collect()
        };
        let layout = Self {
            shape: numbers(format!("{role}.shape"))?,
            strides: numbers(format!("{role}.strides"))?,
        };
        if layout.shape.len() != layout.strides.len() {
            return Err(format!("{role}: shape and strides differ in length").into());
        }
        Ok(layout)
    }

    /// Elements of the backing buffer: `1 + sum((shape[k] - 1) * strides[k])`, or 0 if any
    /// extent is 0.
    fn buffer_len(&self) -> usize {
        if self.shape.contains(&0) {
            return 0;
        }
        let furthest: usize = self
            .shape
            .iter()
            .zip(&self.strides)
            .map(|(n, s)| (n - 1) * s)
            .sum();
        furthest + 1
    }

    /// The buffer offset of each element of the view, in C order.
    fn offsets(&self) -> Vec<usize> {
        let count = self.shape.iter().product();
        (0..count)
            .map(|index| {
                let mut rest = index;
                let mut offset = 0;
                for (&extent, &stride) in self.shape.iter().zip(&self.strides).rev() {
                    offset += rest % extent * stride;
                    rest /= extent;
                }
                offset
            })
            .collect()
    }
}

/// One role's backing buffer on the context, and what it held before the op.
struct Tensor<'c, T: Element> {
    layout: Layout,
    buffer: DeviceBuffer<'c, T>,
    initial: Vec<T>,
}

impl<'c, T: Element + Scalar> Tensor<'c, T> {
    /// The role's buffer: its file's contents, or NaN for an output the runner allocates.
    fn load(ctx: &'c Context, case: &Case, dir: &Path, role: &str) -> Outcome<Self> {
        let layout = Layout::of(case, role)?;
        let len = layout.buffer_len();
        let initial = match case.find(role) {
            None => vec![T::from_f32(f32::NAN); len],
            Some(alias) if alias.starts_with('@') => {
                return Err(format!("{role}={alias}: only y=@x is supported").into());
            }
            Some(file) => {
                let npy = Npy::read(&dir.join("data").join(file))?;
                if npy.shape != [len] {
                    return Err(format!(
                        "{file} has shape {:?}, but the view of {role} needs a buffer of {len}",
                        npy.shape
                    )
                    .into());
                }
                npy.into_vec().map_err(|e| format!("{file}: {e}"))?
            }
        };
        let buffer = DeviceBuffer::from_slice(ctx, &initial, Stream::DEFAULT)?;
        Ok(Self {
            layout,
            buffer,
            initial,
        })
    }

    fn view(&self) -> llmk::Result<TensorRef<'_>> {
        self.buffer.view(&self.layout.shape, &self.layout.strides)
    }

    fn view_mut(&mut self) -> llmk::Result<TensorMut<'_>> {
        self.buffer
            .view_mut(&self.layout.shape, &self.layout.strides)
    }

    /// What is wrong with the buffer after the op: view elements off `expect.<role>` by more
    /// than `atol + rtol * |expect|` (NaN and infinity never pass), and buffer elements outside
    /// the view that changed.
    fn compare(&self, case: &Case, dir: &Path, role: &str) -> Outcome<Vec<String>> {
        let file = case.get(&format!("expect.{role}"))?;
        let rtol: f64 = case.get(&format!("rtol.{role}"))?.parse()?;
        let atol: f64 = case.get(&format!("atol.{role}"))?.parse()?;
        let expect = Npy::read(&dir.join("data").join(file))?;
        if expect.shape != self.layout.shape {
            return Err(format!(
                "{file} has shape {:?}, {role} {:?}",
                expect.shape, self.layout.shape
            )
            .into());
        }
        let want: Vec<f64> = expect.into_vec().map_err(|e| format!("{file}: {e}"))?;
        let got = self.buffer.to_vec(Stream::DEFAULT)?;

        let mut problems = Vec::new();
        let offsets = self.layout.offsets();
        let mut in_view = vec![false; got.len()];
        let mut off = Vec::new();
        for (index, (&offset, want)) in offsets.iter().zip(want).enumerate() {
            in_view[offset] = true;
            let value = f64::from(got[offset].to_f32());
            if !(value.is_finite() && (value - want).abs() <= atol + rtol * want.abs()) {
                off.push(format!("{role}[{index}] = {value}, expected {want}"));
            }
        }
        if !off.is_empty() {
            problems.push(format!(
                "{} of {} elements of {role} off (rtol {rtol}, atol {atol}): {}",
                off.len(),
                offsets.len(),
                off[..off.len().min(3)].join(", ")
            ));
        }

        let bits = |value: T| value.to_f32().to_bits();
        let changed: Vec<usize> = (0..got.len())
            .filter(|&e| !in_view[e] && bits(got[e]) != bits(self.initial[e]))
            .collect();
        if let Some(first) = changed.first() {
            problems.push(format!(
                "{} elements of {role}'s buffer outside its view changed, the first at {first}",
                changed.len()
            ));
        }
        Ok(problems)
    }
}
