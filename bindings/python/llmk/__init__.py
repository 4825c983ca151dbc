"""llmk: CUDA kernels for LLM inference, through libllmk's C API (ctypes, no compiled extension).

    import numpy as np, llmk
    x = np.random.rand(4, 4096).astype(np.float32)
    with llmk.Context.cpu() as ctx:
        y = llmk.rms_norm(ctx, x, np.ones(4096, np.float32), 1e-6, out=np.empty_like(x))

libllmk is looked up, in order: $LLMK_LIBRARY (and only there when set), libllmk.so.0 or
libllmk.so beside this package, then the dynamic loader (libllmk.so.0, ctypes.util.find_library).
Importing fails with LibraryLoadError (an ImportError) if none loads or if its ABI version is not
the one this binding was written for.

The ops, each under its C name without llmk_: rms_norm, add_rms_norm, layer_norm;
bias_activation, gated_activation (Activation); rope (RopeConfig, RopeStyle); embedding;
kv_cache_write, paged_kv_cache_write; matmul, matmul_path_for, matmul_tune, matmul_cache_stats
(MatmulConfig, MatmulPath, MatmulTuning, MatmulCacheStats); ffn, gated_mlp and their
*_workspace_size (MlpConfig); attention, attention_varlen (AttentionConfig, AttentionKernel);
adamw_step (AdamWConfig).

Failed calls raise LlmkError with .status (a Status) and .message (llmk's detail, which names
the argument at fault). Shapes and strides are counted in elements throughout.
"""
from ._activation import Activation, bias_activation, gated_activation
from ._adamw import AdamWConfig, adamw_step
from ._attention import AttentionConfig, AttentionKernel, attention, attention_varlen
from ._context import Backend, Context, DeviceBuffer, cuda_device_count
from ._embedding import embedding
from ._errors import LlmkError, Status
from ._kv_cache import kv_cache_write, paged_kv_cache_write
from ._library import LibraryLoadError, abi_version, library_path, version
from ._matmul import (MatmulCacheStats, MatmulConfig, MatmulPath, MatmulTuning, matmul,
                      matmul_cache_stats, matmul_path_for, matmul_tune)
from ._mlp import MlpConfig, ffn, ffn_workspace_size, gated_mlp, gated_mlp_workspace_size
from ._norm import add_rms_norm, layer_norm, rms_norm
from ._rope import RopeConfig, RopeStyle, rope
from ._tensor import DType, Tensor, as_tensor

__all__ = [
    "Activation", "AdamWConfig", "AttentionConfig", "AttentionKernel", "Backend", "Context",
    "DeviceBuffer", "DType", "LibraryLoadError", "LlmkError", "MatmulCacheStats", "MatmulConfig",
    "MatmulPath", "MatmulTuning", "MlpConfig", "RopeConfig", "RopeStyle", "Status", "Tensor",
    "abi_version", "adamw_step", "add_rms_norm", "as_tensor", "attention", "attention_varlen",
    "bias_activation",
    "cuda_device_count", "embedding", "ffn", "ffn_workspace_size", "gated_activation",
    "gated_mlp", "gated_mlp_workspace_size", "kv_cache_write", "layer_norm", "library_path",
    "matmul", "matmul_cache_stats", "matmul_path_for", "matmul_tune", "paged_kv_cache_write",
    "rms_norm", "rope", "version",
]
