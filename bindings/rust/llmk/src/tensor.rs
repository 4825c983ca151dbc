//! Tensor views: strided windows on memory that an op reads ([`TensorRef`]) or writes
//! ([`TensorMut`]), borrowing that memory for as long as the view lives.

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

use crate::dtype::{DType, Element};
use crate::error::{Error, Result, Status};
use crate::{MAX_DIMS, sys};

/// Where a view's memory lives, as far as this crate knows. Ops refuse a view in the other
/// memory space than their context's before the library could dereference it: the CPU backend
/// cannot tell device pointers from host pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Memory {
    /// A Rust slice, or a buffer of a CPU context.
    Host,
    /// A buffer of a CUDA context.
    Cuda,
    /// A raw pointer, vouched for by the `unsafe` code that made the view.
    Unchecked,
}

/// What both kinds of views hold: the C struct, and what the C struct does not say.
#[derive(Clone, Copy)]
struct View {
    raw: sys::llmk_tensor,
    dtype: DType,
    memory: Memory,
}

impl View {
    /// A view with extents and strides still zero, once `shape_len` and `strides_len` make a
    /// valid number of dimensions.
    fn with_ndim(
        data: *mut c_void,
        dtype: DType,
        memory: Memory,
        shape_len: usize,
        strides_len: usize,
    ) -> Result<Self> {
        if shape_len != strides_len {
            return Err(Error::new(
                Status::InvalidShape,
                format!("view: shape has {shape_len} dimensions but strides has {strides_len}"),
            ));
        }
        if shape_len > MAX_DIMS {
            return Err(Error::new(
                Status::InvalidNdim,
                format!("view: {shape_len} dimensions; at most {MAX_DIMS} are supported"),
            ));
        }
        Ok(Self {
            raw: sys::llmk_tensor {
                data,
                dtype: dtype as i32,
                ndim: shape_len as i32,
                shape: [0; MAX_DIMS],
                strides: [0; MAX_DIMS],
            },
            dtype,
            memory,
        })
    }

    /// A view of the `len` elements at `data`; refused unless each of its elements is one of
    /// them.
    fn within(
        data: *mut c_void,
        len: usize,
        dtype: DType,
        shape: &[usize],
        strides: &[usize],
        memory: Memory,
    ) -> Result<Self> {
        let mut view = Self::with_ndim(data, dtype, memory, shape.len(), strides.len())?;
        let too_large = |what: &str, value: usize| {
            Error::new(
                Status::InvalidShape,
                format!("view: {what} {value} does not fit in an i64"),
            )
        };
        for (d, (&extent, &stride)) in shape.iter().zip(strides).enumerate() {
            view.raw.shape[d] = i64::try_from(extent).map_err(|_| too_large("extent", extent))?;
            view.raw.strides[d] = i64::try_from(stride).map_err(|_| too_large("stride", stride))?;
        }
        if !shape.contains(&0) {
            // The furthest element; None if that overflows.
            let furthest = shape
                .iter()
                .zip(strides)
                .try_fold(0usize, |sum, (&extent, &stride)| {
                    (extent - 1).checked_mul(stride)?.checked_add(sum)
                });
            if furthest.is_none_or(|furthest| furthest >= len) {
                return Err(Error::new(
                    Status::InvalidStride,
                    format!(
                        "view: shape {shape:?} with strides {strides:?} reaches beyond the {len} \
                         elements it views"
                    ),
                ));
            }
        }
        Ok(view)
    }

    /// A view of whatever `data` points to, checked for nothing but its number of dimensions.
    fn raw_parts(data: *mut c_void, dtype: DType, shape: &[i64], strides: &[i64]) -> Result<Self> {
        let mut view = Self::with_ndim(data, dtype, Memory::Unchecked, shape.len(), strides.len())?;
        view.raw.shape[..shape.len()].copy_from_slice(shape);
        view.raw.strides[..strides.len()].copy_from_slice(strides);
        Ok(view)
    }

    fn shape(&self) -> &[i64] {
        &self.raw.shape[..self.raw.ndim as usize]
    }

    fn strides(&self) -> &[i64] {
        &self.raw.strides[..self.raw.ndim as usize]
    }

    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("data", &self.raw.data)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .finish()
    }
}

/// Row-major strides for `shape`: the last dimension contiguous.
fn contiguous_strides(shape: &[usize]) -> Result<Vec<usize>> {
    let mut strides = vec![0; shape.len()];
    let mut step = 1usize;
    for (stride, &extent) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.checked_mul(extent).ok_or_else(|| {
            Error::new(
                Status::InvalidShape,
                format!("view: shape {shape:?} has more elements than fit in a usize"),
            )
        })?;
    }
    Ok(strides)
}

/// A strided view that an op reads: it borrows its elements for `'a`.
///
/// Shapes and strides count elements. Element `(i0, i1, ...)` is element
/// `i0 * strides[0] + i1 * strides[1] + ...` of the memory the view starts at.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    view: View,
    _elements: PhantomData<&'a [u8]>,
}

impl<'a> TensorRef<'a> {
    /// A view of host memory: fails unless every element of the view lies within `data`, or if
    /// `shape` and `strides` differ in length or have more than [`MAX_DIMS`] entries.
    pub fn new<T: Element>(data: &'a [T], shape: &[usize], strides: &[usize]) -> Result<Self> {
        // SAFETY: a shared borrow of `data.len()` elements for 'a.
        unsafe {
            Self::within(
                data.as_ptr().cast(),
                data.len(),
                T::DTYPE,
                shape,
                strides,
                Memory::Host,
            )
        }
    }

    /// A row-major contiguous view of host memory: [`TensorRef::new`] with each stride the
    /// product of the extents after it.
    pub fn contiguous<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Self> {
        Self::new(data, shape, &contiguous_strides(shape)?)
    }

    /// A view of the `len` elements at `data`, checked as in [`TensorRef::new`].
    ///
    /// # Safety
    ///
    /// `data` is valid for reads of `len` elements of `dtype` in `memory` for `'a`, and they are
    /// not written through anything else meanwhile.
    pub(crate) unsafe fn within(
        data: *const c_void,
        len: usize,
        dtype: DType,
        shape: &[usize],
        strides: &[usize],
        memory: Memory,
    ) -> Result<Self> {
        View::within(data.cast_mut(), len, dtype, shape, strides, memory).map(Self::from_view)
    }

    /// A view of any memory (host, device or managed), unchecked: extents and strides may even
    /// be negative, for the library to refuse. Fails only if `shape` and `strides` differ in
    /// length or have more than [`MAX_DIMS`] entries.
    ///
    /// Used with a CUDA context, the view may be read after the op returns, until the work
    /// launched on its stream completes.
    ///
    /// # Safety
    ///
    /// Every element of the view is valid for reads for `'a`, and for as long as work launched
    /// with the view may still read it; the memory is in the space of the context that the view
    /// is used with; and nothing writes it meanwhile except, for in-place use, the op itself
    /// through an identical [`TensorMut`].
    pub unsafe fn from_raw_parts(
        data: *const c_void,
        dtype: DType,
        shape: &[i64],
        strides: &[i64],
    ) -> Result<Self> {
        View::raw_parts(data.cast_mut(), dtype, shape, strides).map(Self::from_view)
    }

    fn from_view(view: View) -> Self {
        Self {
            view,
            _elements: PhantomData,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.view.dtype
    }

    /// The extents, outermost first.
    pub fn shape(&self) -> &[i64] {
        self.view.shape()
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[i64] {
        self.view.strides()
    }

    /// The `llmk_tensor` passed to the library.
    pub fn as_raw(&self) -> &sys::llmk_tensor {
        &self.view.raw
    }

    pub(crate) fn memory(&self) -> Memory {
        self.view.memory
    }
}

impl fmt::Debug for TensorRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view.debug("TensorRef", f)
    }
}

/// A strided view that an op writes (or reads and writes): it borrows its elements mutably for
/// `'a`. Shapes and strides are as for [`TensorRef`].
pub struct TensorMut<'a> {
    view: View,
    _elements: PhantomData<&'a mut [u8]>,
}

impl<'a> TensorMut<'a> {
    /// A view of host memory: fails unless every element of the view lies within `data`, or if
    /// `shape` and `strides` differ in length or have more than [`MAX_DIMS`] entries.
    pub fn new<T: Element>(data: &'a mut [T], shape: &[usize], strides: &[usize]) -> Result<Self> {
        let len = data.len();
        // SAFETY: an exclusive borrow of `len` elements for 'a.
        unsafe {
            Self::within(
                data.as_mut_ptr().cast(),
                len,
                T::DTYPE,
                shape,
                strides,
                Memory::Host,
            )
        }
    }

    /// A row-major contiguous view of host memory: [`TensorMut::new`] with each stride the
    /// product of the extents after it.
    pub fn contiguous<T: Element>(data: &'a mut [T], shape: &[usize]) -> Result<Self> {
        Self::new(data, shape, &contiguous_strides(shape)?)
    }

    /// A view of the `len` elements at `data`, checked as in [`TensorMut::new`].
    ///
    /// # Safety
    ///
    /// `data` is valid for reads and writes of `len` elements of `dtype` in `memory` for `'a`,
    /// and nothing else accesses them meanwhile.
    pub(crate) unsafe fn within(
        data: *mut c_void,
        len: usize,
        dtype: DType,
        shape: &[usize],
        strides: &[usize],
        memory: Memory,
    ) -> Result<Self> {
        View::within(data, len, dtype, shape, strides, memory).map(Self::from_view)
    }

    /// A view of any memory (host, device or managed), unchecked: extents and strides may even
    /// be negative, for the library to refuse. Fails only if `shape` and `strides` differ in
    /// length or have more than [`MAX_DIMS`] entries.
    ///
    /// Besides device memory, this is how to pass an output that aliases an input, for the
    /// library to check (the `*_in_place` ops do the common case safely).
    ///
    /// # Safety
    ///
    /// Every element of the view is valid for reads and writes for `'a`, and for as long as work
    /// launched with the view may still access it; the memory is in the space of the context that
    /// the view is used with; and nothing else accesses it meanwhile except views passed to the
    /// same op call.
    pub unsafe fn from_raw_parts(
        data: *mut c_void,
        dtype: DType,
        shape: &[i64],
        strides: &[i64],
    ) -> Result<Self> {
        View::raw_parts(data, dtype, shape, strides).map(Self::from_view)
    }

    fn from_view(view: View) -> Self {
        Self {
            view,
            _elements: PhantomData,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.view.dtype
    }

    /// The extents, outermost first.
    pub fn shape(&self) -> &[i64] {
        self.view.shape()
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[i64] {
        self.view.strides()
    }

    /// The `llmk_tensor` passed to the library.
    pub fn as_raw(&self) -> &sys::llmk_tensor {
        &self.view.raw
    }

    /// The same view, read-only, for as long as it borrows `self`: for calls that only inspect
    /// an output, such as [`matmul_path_for`](crate::matmul_path_for).
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef::from_view(self.view)
    }

    pub(crate) fn memory(&self) -> Memory {
        self.view.memory
    }
}

impl fmt::Debug for TensorMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view.debug("TensorMut", f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bf16, F16};

    fn status<T: fmt::Debug>(result: Result<T>) -> Status {
        result.unwrap_err().status()
    }

    #[test]
    fn views_must_fit_their_slice() {
        let data = [0f32; 12];
        let view = TensorRef::new(&data, &[2, 4], &[8, 1]).unwrap();
        assert_eq!(view.shape(), [2, 4]);
        assert_eq!(view.strides(), [8, 1]);
        assert_eq!(view.dtype(), DType::F32);
        // The furthest element, 1 * 8 + 3 = 11, is the last of the slice; one more is not.
        assert_eq!(
            status(TensorRef::new(&data, &[2, 5], &[8, 1])),
            Status::InvalidStride
        );
        assert_eq!(
            status(TensorRef::contiguous(&data, &[13])),
            Status::InvalidStride
        );
        assert!(TensorRef::contiguous(&data, &[3, 4]).is_ok());
        assert_eq!(
            status(TensorRef::new(&data, &[2, usize::MAX], &[1, usize::MAX])),
            Status::InvalidShape
        );
        assert_eq!(
            status(TensorRef::new(&data, &[5, 1 << 62], &[1 << 62, 1])),
            Status::InvalidStride
        );
    }

    #[test]
    fn empty_views_fit_anything() {
        let mut data: [f32; 0] = [];
        assert!(TensorMut::new(&mut data, &[0, 5], &[5, 1]).is_ok());
        assert!(TensorRef::contiguous(&data, &[4, 0]).is_ok());
    }

    #[test]
    fn shape_and_strides_must_agree() {
        let mut data = [F16::default(); 4];
        let nine = [1; 9];
        assert_eq!(
            status(TensorMut::new(&mut data, &[2, 2], &[2])),
            Status::InvalidShape
        );
        assert_eq!(
            status(TensorMut::new(&mut data, &nine, &nine)),
            Status::InvalidNdim
        );
        assert_eq!(
            status(TensorRef::contiguous(&data, &nine)),
            Status::InvalidNdim
        );
        assert!(TensorRef::contiguous(&data, &nine[..8]).is_ok());
        // SAFETY: the view is never used.
        let raw = unsafe { TensorRef::from_raw_parts(std::ptr::null(), DType::F16, &[2], &[1, 1]) };
        assert_eq!(status(raw), Status::InvalidShape);
    }

    #[test]
    fn contiguous_strides_are_row_major() {
        let mut data = [Bf16::default(); 24];
        let view = TensorMut::contiguous(&mut data, &[2, 3, 4]).unwrap();
        assert_eq!(view.strides(), [12, 4, 1]);
        assert_eq!(view.dtype(), DType::Bf16);
        assert_eq!(view.as_raw().ndim, 3);
        let read_only = view.view();
        assert_eq!(read_only.strides(), [12, 4, 1]);
        assert_eq!(read_only.as_raw().data, view.as_raw().data);
    }
}
