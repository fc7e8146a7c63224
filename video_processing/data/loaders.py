"""DataLoaders that say why a worker stalled or died, and warn once per file about the videos they skipped.

PyTorch raises "DataLoader timed out" or "worker exited unexpectedly", which names neither the setting nor the
likely cause; these loaders raise a LoaderError that does. They warn about skipped videos in the main process
(workers' logs may go nowhere), however the loader is used, with or without a Trainer. `Hinting` gives both to a
loader class: `HintingDataLoader` here, LitData's streaming loader in `shards.py`.
"""

from __future__ import annotations

import logging

from torch.utils.data import DataLoader

logger = logging.getLogger("video_processing")


class LoaderError(RuntimeError):
    """A loader worker stalled or died; the message says which and what to change."""


class Hinting:
    """Mixin for DataLoader classes: failures raise LoaderError with a hint; skipped videos are warned about.

    `warned_paths` holds the files warned about already; loaders sharing one set warn once in all.
    """

    def __init__(self, *args, warned_paths: set[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.warned_paths = warned_paths if warned_paths is not None else set()

    def __iter__(self):
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as e:
                hint = _loader_failure_hint(str(e), self.timeout)
                if hint is None:  # an error of the data itself, raised in a worker: keep it as it is
                    raise
                raise LoaderError(f"{e}: {hint}") from e
            warn_skipped(batch, self.warned_paths)
            yield batch


class HintingDataLoader(Hinting, DataLoader):
    """A DataLoader that explains worker timeouts and deaths and warns about skipped videos (see `Hinting`)."""


def _loader_failure_hint(message: str, timeout_s: float) -> str | None:
    if message.startswith("DataLoader timed out"):
        return (
            f"no loader worker delivered a batch within loader_timeout_s={timeout_s} s, so a worker "
            "is stalled (hung storage, or a decoder stuck on a damaged file). If your storage is merely "
            "slow, raise --data.loader_timeout_s (0 waits forever); find damaged files with "
            "`python -m video_processing.check_data DATA_PATH`."
        )
    if message.startswith("DataLoader worker"):
        return (
            "a loader worker died, most often killed for lack of memory (lower --data.num_workers "
            "or --data.batch_size) or by a decoder crash on a damaged file (find it with "
            "`python -m video_processing.check_data DATA_PATH`)."
        )
    return None


def warn_skipped(batch: dict, warned_paths: set[str]) -> None:
    """Warn once per file (`warned_paths` holds those warned about) about the videos a batch reports skipped."""
    for path, reason in batch["skipped"]:
        if path not in warned_paths:
            warned_paths.add(path)
            logger.warning("skipped video %s: %s", path, reason)
