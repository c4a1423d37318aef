"""Which gating job (batch) each sample belongs to."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from ..errors import ConfigError

__all__ = ["assign_batches"]


def assign_batches(sample_ids: Sequence[str], *, batch_size: int) -> dict[str, int]:
    """Assign samples to gating batches by a stable hash of the sample id.

    A sample keeps its batch when others are added or removed (as long as the number of batches,
    ``ceil(n / batch_size)``, stays the same), so editing one sheet row re-gates one batch only.
    """
    if batch_size < 1:
        raise ConfigError(f"config gating.batch_size must be at least 1, not {batch_size}")
    n_batches = max(1, -(-len(sample_ids) // batch_size))
    return {sid: zlib.crc32(str(sid).encode("utf-8")) % n_batches for sid in sample_ids}
