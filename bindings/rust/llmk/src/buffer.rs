//! [`DeviceBuffer`]: memory from `llmk_malloc`, for callers with no CUDA runtime of their own.

use std::mem;
use std::ptr::{self, NonNull};

use crate::context::{Backend, Context, Stream};
use crate::dtype::Element;
use crate::error::{Error, Result, Status, check};
use crate::sys;
use crate::tensor::{Memory, TensorMut, TensorRef};

/// `len` elements of `T` allocated with `llmk_malloc` on a context: device memory of a CUDA
/// context, host memory of a CPU one. Dropping the buffer frees it with `llmk_free` (on CUDA,
/// `cudaFree` waits for device work still using it).
///
/// The contents move in and out through copies from and to host slices, which return once done;
/// ops see the buffer through [`view`](Self::view) and [`view_mut`](Self::view_mut). This is
/// for tests and demos: allocation may synchronize the device, so it has no place in a hot path.
pub struct DeviceBuffer<'ctx, T: Element> {
    ctx: &'ctx Context,
    /// Dangling (never dereferenced nor freed) when `len` is 0.
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the buffer owns its allocation as a Box<[T]> would (T is Send and Sync), the context
// may be used from any thread, and `&self` methods only read the memory.
unsafe impl<T: Element> Send for DeviceBuffer<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Element> Sync for DeviceBuffer<'_, T> {}

impl<'ctx, T: Element> DeviceBuffer<'ctx, T> {
    /// A buffer on `ctx` holding a copy of `data`, made on `stream` and finished on return.
    pub fn from_slice(ctx: &'ctx Context, data: &[T], stream: Stream) -> Result<Self> {
        let mut buffer = Self::allocate(ctx, data.len())?;
        buffer.copy_from_host(data, stream)?;
        Ok(buffer)
    }

    /// A buffer of `len` elements with unspecified contents; `from_slice` fills it at once.
    fn allocate(ctx: &'ctx Context, len: usize) -> Result<Self> {
        if len == 0 {
            // llmk_malloc refuses 0 bytes; an empty buffer needs no memory.
            return Ok(Self {
                ctx,
                ptr: NonNull::dangling(),
                len,
            });
        }
        let bytes = len.checked_mul(mem::size_of::<T>()).ok_or_else(|| {
            Error::new(
                Status::OutOfMemory,
                format!(
                    "malloc: {len} elements of {} are more bytes than a usize counts",
                    T::DTYPE
                ),
            )
        })?;
        let mut raw = ptr::null_mut();
        // SAFETY: a live context and a valid out-pointer.
        check(unsafe { sys::llmk_malloc(ctx.as_raw(), bytes, &mut raw) })?;
        let ptr = NonNull::new(raw.cast())
            .ok_or_else(|| Error::new(Status::Internal, "malloc succeeded but gave NULL"))?;
        Ok(Self { ctx, ptr, len })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The context the memory belongs to.
    pub fn context(&self) -> &'ctx Context {
        self.ctx
    }

    /// Copies `src`, which must have [`len`](Self::len) elements, into the buffer, on `stream`;
    /// returns once the copy is done.
    pub fn copy_from_host(&mut self, src: &[T], stream: Stream) -> Result<()> {
        self.check_len("copy_from_host", src.len())?;
        // SAFETY: `src` is readable and the buffer writable for `len` elements; the host slice
        // stays borrowed until the copy has finished.
        unsafe { self.copy(self.ptr.as_ptr(), src.as_ptr(), stream) }
    }

    /// Copies the buffer into `dst`, which must have [`len`](Self::len) elements, on `stream`;
    /// returns once the copy is done.
    pub fn copy_to_host(&self, dst: &mut [T], stream: Stream) -> Result<()> {
        self.check_len("copy_to_host", dst.len())?;
        // SAFETY: the buffer is readable and `dst` writable for `len` elements; the host slice
        // stays borrowed until the copy has finished.
        unsafe { self.copy(dst.as_mut_ptr(), self.ptr.as_ptr(), stream) }
    }

    /// The contents, copied on `stream`.
    pub fn to_vec(&self, stream: Stream) -> Result<Vec<T>> {
        let mut host = Vec::with_capacity(self.len);
        // SAFETY: the spare capacity is writable for `len` elements and, once the copy has
        // succeeded, holds them all.
        unsafe {
            self.copy(host.as_mut_ptr(), self.ptr.as_ptr(), stream)?;
            host.set_len(self.len);
        }
        Ok(host)
    }

    /// A view of the buffer for an op to read; fails unless every element of the view lies
    /// within the buffer (see [`TensorRef::new`]).
    pub fn view(&self, shape: &[usize], strides: &[usize]) -> Result<TensorRef<'_>> {
        self.view_at(0, shape, strides)
    }

    /// A view for an op to read that starts `offset` elements into the buffer: one of several
    /// slices of a fused buffer, e.g. `gate` and `up` of `[gate | up]`. Fails unless every
    /// element of the view lies within the buffer.
    pub fn view_at(
        &self,
        offset: usize,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<TensorRef<'_>> {
        let rest = self.rest_after("view_at", offset)?;
        // SAFETY: a shared borrow of the buffer's elements from `offset` on, in the context's
        // memory space.
        unsafe {
            TensorRef::within(
                self.ptr.as_ptr().add(offset).cast(),
                rest,
                T::DTYPE,
                shape,
                strides,
                self.memory(),
            )
        }
    }

    /// A view of the buffer for an op to write; fails unless every element of the view lies
    /// within the buffer (see [`TensorMut::new`]).
    pub fn view_mut(&mut self, shape: &[usize], strides: &[usize]) -> Result<TensorMut<'_>> {
        self.view_mut_at(0, shape, strides)
    }

    /// A view for an op to write that starts `offset` elements into the buffer. Fails unless
    /// every element of the view lies within the buffer.
    pub fn view_mut_at(
        &mut self,
        offset: usize,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<TensorMut<'_>> {
        let rest = self.rest_after("view_mut_at", offset)?;
        // SAFETY: an exclusive borrow of the buffer's elements from `offset` on, in the context's
        // memory space.
        unsafe {
            TensorMut::within(
                self.ptr.as_ptr().add(offset).cast(),
                rest,
                T::DTYPE,
                shape,
                strides,
                self.memory(),
            )
        }
    }

    /// The address of the first element, in the context's memory space (dangling when empty).
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The address of the first element, in the context's memory space (dangling when empty).
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }

    pub(crate) fn memory(&self) -> Memory {
        match self.ctx.backend() {
            Backend::Cpu => Memory::Host,
            Backend::Cuda => Memory::Cuda,
        }
    }

    /// The number of elements from `offset` to the end; fails if `offset` is past the end. (An
    /// offset of `len` is allowed: empty views fit there.)
    fn rest_after(&self, op: &str, offset: usize) -> Result<usize> {
        self.len.checked_sub(offset).ok_or_else(|| {
            Error::new(
                Status::InvalidStride,
                format!(
                    "{op}: offset {offset} is past the end of the buffer of {} elements",
                    self.len
                ),
            )
        })
    }

    fn check_len(&self, op: &str, host: usize) -> Result<()> {
        if host == self.len {
            return Ok(());
        }
        Err(Error::new(
            Status::ShapeMismatch,
            format!(
                "{op}: the host slice has {host} elements, the buffer {}",
                self.len
            ),
        ))
    }

    /// Copies `len` elements from `src` to `dst` on `stream` and waits for the copy.
    ///
    /// # Safety
    ///
    /// `src` is readable and `dst` writable for `len` elements, one of them in this buffer.
    unsafe fn copy(&self, dst: *mut T, src: *const T, stream: Stream) -> Result<()> {
        let bytes = self.len * mem::size_of::<T>();
        // SAFETY: by this function's contract; the stream is valid by Stream's.
        check(unsafe {
            sys::llmk_memcpy(
                self.ctx.as_raw(),
                dst.cast(),
                src.cast(),
                bytes,
                stream.as_raw(),
            )
        })?;
        self.ctx.synchronize(stream)
    }
}

impl<T: Element> Drop for DeviceBuffer<'_, T> {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated by llmk_malloc on this context and freed once. A failure (a lost
            // CUDA context) has no one to report to.
            let _ = unsafe { sys::llmk_free(self.ctx.as_raw(), self.ptr.as_ptr().cast()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bf16;

    #[test]
    fn round_trip_on_the_cpu() {
        let ctx = Context::cpu().unwrap();
        let data: Vec<Bf16> = (0..10u8).map(|i| Bf16::from_f32(f32::from(i))).collect();
        let mut buffer = DeviceBuffer::from_slice(&ctx, &data, Stream::DEFAULT).unwrap();
        assert_eq!(buffer.len(), 10);
        let back: Vec<u16> = buffer
            .to_vec(Stream::DEFAULT)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(back, data.iter().map(|v| v.to_bits()).collect::<Vec<_>>());

        let ones = [Bf16::from_f32(1.0); 10];
        buffer.copy_from_host(&ones, Stream::DEFAULT).unwrap();
        let mut host = [Bf16::default(); 10];
        buffer.copy_to_host(&mut host, Stream::DEFAULT).unwrap();
        assert!(host.iter().all(|v| v.to_f32() == 1.0));
    }

    #[test]
    fn copies_need_equal_lengths() {
        let ctx = Context::cpu().unwrap();
        let mut buffer = DeviceBuffer::from_slice(&ctx, &[0f32; 4], Stream::DEFAULT).unwrap();
        let error = buffer
            .copy_from_host(&[0f32; 3], Stream::DEFAULT)
            .unwrap_err();
        assert_eq!(error.status(), Status::ShapeMismatch);
        assert!(
            error.message().contains("has 3 elements, the buffer 4"),
            "{error}"
        );
        let error = buffer
            .copy_to_host(&mut [0f32; 5], Stream::DEFAULT)
            .unwrap_err();
        assert_eq!(error.status(), Status::ShapeMismatch);
    }

    #[test]
    fn empty_buffers_need_no_memory() {
        let ctx = Context::cpu().unwrap();
        let mut buffer = DeviceBuffer::<f32>::from_slice(&ctx, &[], Stream::DEFAULT).unwrap();
        assert!(buffer.is_empty());
        assert!(buffer.to_vec(Stream::DEFAULT).unwrap().is_empty());
        assert!(buffer.view_mut(&[0, 4], &[4, 1]).is_ok());
        assert!(buffer.view(&[1], &[1]).is_err());
    }

    #[test]
    fn views_must_fit_the_buffer() {
        let ctx = Context::cpu().unwrap();
        let mut buffer = DeviceBuffer::from_slice(&ctx, &[0f32; 8], Stream::DEFAULT).unwrap();
        assert!(buffer.view(&[2, 4], &[4, 1]).is_ok());
        let error = buffer.view(&[2, 4], &[5, 1]).unwrap_err();
        assert_eq!(error.status(), Status::InvalidStride);
        assert!(std::ptr::eq(buffer.context(), &ctx));

        // [gate | up] of two rows of 2: up starts 2 elements in.
        let up = buffer.view_at(2, &[2, 2], &[4, 1]).unwrap();
        assert_eq!(up.as_raw().data as usize, buffer.as_ptr() as usize + 8);
        assert!(buffer.view_at(3, &[2, 2], &[4, 1]).is_err());
        assert!(buffer.view_mut_at(8, &[0], &[1]).is_ok());
        let error = buffer.view_mut_at(9, &[0], &[1]).unwrap_err();
        assert_eq!(error.status(), Status::InvalidStride);
        assert!(error.message().contains("offset 9"), "{error}");
    }
}
