//! [`Workspace`]: scratch memory that an op borrows for one call, such as the intermediate
//! activations of [`ffn`](crate::ffn) and [`gated_mlp`](crate::gated_mlp).

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::ptr;

use crate::buffer::DeviceBuffer;
use crate::dtype::Element;
use crate::tensor::Memory;

/// Scratch memory for one op call, borrowed exclusively for `'a`: a [`DeviceBuffer`] (device
/// memory of a CUDA context, host memory of a CPU one), a host byte slice (CPU contexts), or raw
/// memory from elsewhere ([`Workspace::from_raw_parts`]).
///
/// The op that takes it says how many bytes it needs (e.g. [`ffn_workspace_size`]) and which
/// alignment (16 bytes for the MLP ops; memory from `llmk_malloc` is aligned to 256). The
/// contents before and after the call mean nothing. On a CUDA context the op may still use the
/// memory until the work launched on its stream completes: keep it alive, and unused by other
/// work, until then (a [`DeviceBuffer`] waits for device work when dropped).
///
/// [`ffn_workspace_size`]: crate::ffn_workspace_size
pub struct Workspace<'a> {
    data: *mut c_void,
    bytes: usize,
    memory: Memory,
    _memory: PhantomData<&'a mut [u8]>,
}

impl<'a> Workspace<'a> {
    /// All of `buffer`, in its context's memory space.
    pub fn new<T: Element>(buffer: &'a mut DeviceBuffer<'_, T>) -> Self {
        let bytes = buffer.len() * mem::size_of::<T>();
        // An empty buffer's pointer is dangling, and possibly misaligned: pass NULL instead.
        let data = if bytes == 0 {
            ptr::null_mut()
        } else {
            buffer.as_mut_ptr().cast()
        };
        Self {
            data,
            bytes,
            memory: buffer.memory(),
            _memory: PhantomData,
        }
    }

    /// Host memory, for a CPU context. The library refuses a slice that does not start on the
    /// alignment the op needs ([`Status::Misaligned`](crate::Status::Misaligned)).
    pub fn host(bytes: &'a mut [u8]) -> Self {
        let data = if bytes.is_empty() {
            ptr::null_mut()
        } else {
            bytes.as_mut_ptr().cast()
        };
        Self {
            data,
            bytes: bytes.len(),
            memory: Memory::Host,
            _memory: PhantomData,
        }
    }

    /// `bytes` bytes at `data`, in any memory space, unchecked.
    ///
    /// # Safety
    ///
    /// `data` is NULL with `bytes` 0, or valid for reads and writes of `bytes` bytes for `'a` and
    /// for as long as work launched with the workspace may still use it; the memory is in the
    /// space of the context that the workspace is used with; and nothing else accesses it
    /// meanwhile.
    pub unsafe fn from_raw_parts(data: *mut c_void, bytes: usize) -> Self {
        Self {
            data,
            bytes,
            memory: Memory::Unchecked,
            _memory: PhantomData,
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the workspace has no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The address of the first byte (NULL for an empty workspace).
    pub fn as_ptr(&self) -> *mut c_void {
        self.data
    }

    pub(crate) fn memory(&self) -> Memory {
        self.memory
    }
}

impl<'a, T: Element> From<&'a mut DeviceBuffer<'_, T>> for Workspace<'a> {
    fn from(buffer: &'a mut DeviceBuffer<'_, T>) -> Self {
        Self::new(buffer)
    }
}

impl fmt::Debug for Workspace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace")
            .field("data", &self.data)
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Stream};

    #[test]
    fn workspaces_cover_their_memory() {
        let ctx = Context::cpu().unwrap();
        let mut buffer = DeviceBuffer::from_slice(&ctx, &[0f32; 6], Stream::DEFAULT).unwrap();
        let address = buffer.as_ptr() as usize;
        let workspace = Workspace::new(&mut buffer);
        assert_eq!(
            (workspace.len(), workspace.as_ptr() as usize),
            (24, address)
        );
        assert_eq!(workspace.memory(), Memory::Host);

        let mut empty = DeviceBuffer::<u8>::from_slice(&ctx, &[], Stream::DEFAULT).unwrap();
        let workspace = Workspace::from(&mut empty);
        assert!(workspace.is_empty() && workspace.as_ptr().is_null());

        let mut host = [0u8; 5];
        let workspace = Workspace::host(&mut host[1..]);
        assert_eq!(workspace.len(), 4);
        assert!(Workspace::host(&mut []).as_ptr().is_null());
    }
}
