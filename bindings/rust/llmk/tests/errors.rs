//! Refused calls: each reports the right status and a message naming the argument at fault,
//! leaves its output untouched, and its message belongs to the thread that made the call.

mod common;

use std::ffi::CStr;
use std::ptr;
use std::sync::Barrier;
use std::thread;

use common::announce;
use llmk::{Bf16, Context, DType, DeviceBuffer, Error, Status, Stream, TensorMut, TensorRef};

const S: Stream = Stream::DEFAULT;
const EPS: f32 = 1e-6;
/// What outputs hold before a call that must be refused.
const SENTINEL: f32 = -7.0;

fn cpu() -> Context {
    Context::cpu().expect("CPU context")
}

/// Two rows of four.
fn x_data() -> Vec<f32> {
    (0..8u8).map(|i| f32::from(i) - 3.5).collect()
}

fn ones(n: usize) -> Vec<f32> {
    vec![1.0; n]
}

fn assert_error(error: &Error, status: Status, needles: &[&str]) {
    assert_eq!(error.status(), status, "{error}");
    for needle in needles {
        assert!(
            error.message().contains(needle),
            "{error:?} does not mention {needle:?}"
        );
    }
}

/// Calls `call` with a contiguous 2x4 f32 output full of SENTINEL: the call must fail with
/// `status` and a message containing each of `needles`, and leave the output as it was.
fn refused(
    status: Status,
    needles: &[&str],
    call: impl FnOnce(&mut TensorMut<'_>) -> llmk::Result<()>,
) {
    let mut y = [SENTINEL; 8];
    let mut view = TensorMut::contiguous(&mut y, &[2, 4]).unwrap();
    let error = call(&mut view).expect_err("the call should have been refused");
    assert_error(&error, status, needles);
    assert!(
        y.iter().all(|&v| v == SENTINEL),
        "a refused call wrote its output: {y:?}"
    );
}

#[test]
fn null_data_is_refused() {
    let ctx = cpu();
    let weight = ones(4);
    refused(Status::NullPointer, &["rms_norm: x.data is NULL"], |y| {
        // SAFETY: the library checks the data pointer before it reads anything.
        let x = unsafe { TensorRef::from_raw_parts(ptr::null(), DType::F32, &[2, 4], &[4, 1]) }?;
        llmk::rms_norm(&ctx, &x, &TensorRef::contiguous(&weight, &[4])?, EPS, y, S)
    });
}

#[test]
fn dtype_mismatch_names_the_tensor() {
    let ctx = cpu();
    let x = x_data();
    let weight = ones(4);
    let bf16_weight = [Bf16::from_f32(1.0); 4];
    refused(
        Status::DtypeMismatch,
        &["rms_norm: weight is bf16 but x is f32"],
        |y| {
            let x = TensorRef::contiguous(&x, &[2, 4])?;
            llmk::rms_norm(
                &ctx,
                &x,
                &TensorRef::contiguous(&bf16_weight, &[4])?,
                EPS,
                y,
                S,
            )
        },
    );
    refused(
        Status::DtypeMismatch,
        &["layer_norm: bias is bf16 but x is f32"],
        |y| {
            let x = TensorRef::contiguous(&x, &[2, 4])?;
            let weight = TensorRef::contiguous(&weight, &[4])?;
            let bias = TensorRef::contiguous(&bf16_weight, &[4])?;
            llmk::layer_norm(&ctx, &x, &weight, Some(&bias), EPS, y, S)
        },
    );
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let ctx = cpu();
    let x = x_data();
    let weight = ones(4);
    refused(
        Status::ShapeMismatch,
        &["weight has 3 elements, x rows have 4"],
        |y| {
            let x = TensorRef::contiguous(&x, &[2, 4])?;
            llmk::rms_norm(
                &ctx,
                &x,
                &TensorRef::contiguous(&weight[..3], &[3])?,
                EPS,
                y,
                S,
            )
        },
    );
    let mut residual = [SENTINEL; 6];
    refused(
        Status::ShapeMismatch,
        &["residual has extent 3 in dimension 1"],
        |y| {
            let x = TensorRef::contiguous(&x, &[2, 4])?;
            let mut residual = TensorMut::contiguous(&mut residual, &[2, 3])?;
            let weight = TensorRef::contiguous(&weight, &[4])?;
            llmk::add_rms_norm(&ctx, &x, &mut residual, &weight, EPS, y, S)
        },
    );
    assert!(
        residual.iter().all(|&v| v == SENTINEL),
        "residual was written"
    );
}

#[test]
fn negative_stride_is_refused() {
    let ctx = cpu();
    let x = x_data();
    let weight = ones(4);
    refused(
        Status::InvalidStride,
        &["x has a negative stride -4 in dimension 0"],
        |y| {
            // Row 1, then row 0: elements 4..8 and 0..4 of `x`.
            // SAFETY: every element of the view lies within `x`, which outlives the call.
            let x = unsafe {
                TensorRef::from_raw_parts(x.as_ptr().add(4).cast(), DType::F32, &[2, 4], &[-4, 1])
            }?;
            llmk::rms_norm(&ctx, &x, &TensorRef::contiguous(&weight, &[4])?, EPS, y, S)
        },
    );
}

#[test]
fn bad_eps_is_refused() {
    let ctx = cpu();
    let x = x_data();
    let weight = ones(4);
    for eps in [f32::NAN, -1.0, f32::INFINITY] {
        refused(Status::InvalidValue, &["rms_norm: eps is"], |y| {
            let x = TensorRef::contiguous(&x, &[2, 4])?;
            llmk::rms_norm(&ctx, &x, &TensorRef::contiguous(&weight, &[4])?, eps, y, S)
        });
    }
}

#[test]
fn partial_overlap_is_refused() {
    let ctx = cpu();
    let weight = ones(4);
    let mut data: Vec<f32> = (0..10u8).map(f32::from).collect();
    let before = data.clone();
    let base = data.as_mut_ptr();
    // x is elements 0..8 as [2, 4]; y the same view shifted by two elements. Both lie within
    // `data`, which outlives the call and is not otherwise used meanwhile, and the library
    // refuses the overlap before it reads or writes anything.
    // SAFETY: as above.
    let x = unsafe {
        TensorRef::from_raw_parts(base.cast_const().cast(), DType::F32, &[2, 4], &[4, 1])
    };
    // SAFETY: as above.
    let y = unsafe { TensorMut::from_raw_parts(base.add(2).cast(), DType::F32, &[2, 4], &[4, 1]) };
    let (x, mut y) = (x.unwrap(), y.unwrap());
    let weight = TensorRef::contiguous(&weight, &[4]).unwrap();
    let error = llmk::rms_norm(&ctx, &x, &weight, EPS, &mut y, S).unwrap_err();
    assert_error(&error, Status::Overlap, &["rms_norm: y overlaps x"]);
    assert_eq!(data, before);
}

#[test]
fn messages_are_per_thread() {
    let ctx = cpu();
    let x = x_data();
    let barrier = Barrier::new(2);
    // Each thread makes a call that fails its own way, waits until the other has failed too,
    // and only then reads the library's message for its thread.
    let fail_and_read = |weight: TensorRef<'_>| {
        let mut y = [0f32; 8];
        let x = TensorRef::contiguous(&x, &[2, 4]).unwrap();
        let mut y = TensorMut::contiguous(&mut y, &[2, 4]).unwrap();
        let error = llmk::rms_norm(&ctx, &x, &weight, EPS, &mut y, S).unwrap_err();
        barrier.wait();
        // SAFETY: never NULL; read before any other llmk call on this thread.
        let message = unsafe { CStr::from_ptr(llmk::sys::llmk_last_error_message()) };
        (error, message.to_string_lossy().into_owned())
    };
    let bf16_weight = [Bf16::from_f32(1.0); 4];
    let short_weight = ones(3);
    let ((dtype, dtype_now), (shape, shape_now)) = thread::scope(|scope| {
        let dtype =
            scope.spawn(|| fail_and_read(TensorRef::contiguous(&bf16_weight, &[4]).unwrap()));
        let shape =
            scope.spawn(|| fail_and_read(TensorRef::contiguous(&short_weight, &[3]).unwrap()));
        (dtype.join().unwrap(), shape.join().unwrap())
    });
    assert_error(
        &dtype,
        Status::DtypeMismatch,
        &["weight is bf16 but x is f32"],
    );
    assert_error(
        &shape,
        Status::ShapeMismatch,
        &["weight has 3 elements, x rows have 4"],
    );
    assert_eq!(dtype_now, dtype.message());
    assert_eq!(shape_now, shape.message());
}

#[test]
fn memory_of_the_wrong_space_is_refused() {
    if llmk::cuda_device_count().expect("cuda_device_count") == 0 {
        announce("memory_of_the_wrong_space_is_refused: SKIPPED, no CUDA device");
        return;
    }
    let (cpu, gpu) = (cpu(), Context::cuda(0).expect("CUDA context on device 0"));
    let (x, weight) = (x_data(), ones(4));
    let x_device = DeviceBuffer::from_slice(&gpu, &x, S).unwrap();
    let weight_device = DeviceBuffer::from_slice(&gpu, &weight, S).unwrap();

    // Caught by the binding: device memory on the CPU, a host slice on CUDA.
    refused(
        Status::WrongMemorySpace,
        &["rms_norm: x is CUDA device memory"],
        |y| {
            let x = x_device.view(&[2, 4], &[4, 1])?;
            llmk::rms_norm(&cpu, &x, &TensorRef::contiguous(&weight, &[4])?, EPS, y, S)
        },
    );
    refused(
        Status::WrongMemorySpace,
        &["rms_norm: x is host memory"],
        |y| {
            let x = TensorRef::contiguous(&x, &[2, 4])?;
            llmk::rms_norm(&gpu, &x, &weight_device.view(&[4], &[1])?, EPS, y, S)
        },
    );

    // Caught by the library: a raw view of host memory on CUDA.
    let mut y_device = DeviceBuffer::from_slice(&gpu, &[SENTINEL; 8], S).unwrap();
    // SAFETY: the view lies within `x`, and the library refuses host memory before launching.
    let x_host =
        unsafe { TensorRef::from_raw_parts(x.as_ptr().cast(), DType::F32, &[2, 4], &[4, 1]) };
    let weight_view = weight_device.view(&[4], &[1]).unwrap();
    let mut y_view = y_device.view_mut(&[2, 4], &[4, 1]).unwrap();
    let error =
        llmk::rms_norm(&gpu, &x_host.unwrap(), &weight_view, EPS, &mut y_view, S).unwrap_err();
    assert_error(&error, Status::WrongMemorySpace, &["rms_norm: x.data"]);
    assert!(y_device.to_vec(S).unwrap().iter().all(|&v| v == SENTINEL));
}
