"""tsvq ops: ``torch.ops.tsvq.*`` kernels with Python wrappers, fake kernels and autograd.

Each public function checks its inputs, calls the compiled op when ``tsvq._C`` is loaded and
otherwise the pure-PyTorch reference in :mod:`tsvq.ops.reference`.
"""
from . import reference
from .barlow_twins_loss import barlow_twins_loss
from .code_stats import code_stats
from .ema_codebook_update import ema_codebook_update_
from .nearest_code import nearest_code, nearest_code_topk
from .stft import from_time_frequency, istft, stft, to_time_frequency

__all__ = [
    "barlow_twins_loss", "nearest_code", "nearest_code_topk", "code_stats", "ema_codebook_update_", "stft", "istft",
    "to_time_frequency", "from_time_frequency", "reference",
]
