"""Known messages of the pinned libraries that say nothing to a user of this package, silenced one at a time.

Each filter names one message; every other warning and log line still shows. Importing this module installs three
(the package's `__init__` does, before anything imports Lightning); `importing_pytorchvideo` scopes the fourth to
PyTorchVideo's import.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Lightning 2.6 flattens logged values with torch's LeafSpec, deprecated since torch 2.9: one FutureWarning per
# run about Lightning's code, which Lightning, not the user, has to change.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)

# torchmetrics (so Lightning) imports transformers whenever it is installed (the [transformers] extra), and
# transformers imports tqdm.auto, which warns in a Jupyter kernel without ipywidgets. No bar of this package or of
# Lightning uses tqdm.auto there (Lightning picks plain tqdm without ipywidgets), so the advice is about nothing shown.
warnings.filterwarnings("ignore", message=r"IProgress not found")


class _NoTips(logging.Filter):
    """Drops Lightning's "💡 Tip:" adverts for its cloud services; keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


# rank_zero_info logs through this logger; a filter on the logger itself drops the record for every handler.
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoTips())


@contextmanager
def importing_pytorchvideo() -> Iterator[None]:
    """Around the first import of PyTorchVideo's models: they import fvcore, which scripts a loss with
    torch.jit.script at import time, a FutureWarning (torch.jit is deprecated) about code this package never runs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        yield
