"""Fetching a file over HTTP(S) so that a network that stalls or cuts short never hangs a run or loses what came.

    fetch("https://host/file.tar", Path("data/.downloads/file.tar"), timeout_s=30, retries=3)

Used for dataset archives (`video_processing.download`) and pretrained weights (`models/backbones.py`). The
bytes go to `<destination>.partial` and the file takes its name only when complete. Every read waits at most
`timeout_s`; a read that times out is "stalled", a connection that ends before the announced length is "cut
short", and both are retried after a growing pause, continuing the partial file where the server honours a Range
request (HTTP 206), from the start where it does not. The errors name the URL with any password redacted.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

logger = logging.getLogger("video_processing")

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
BACKOFF_S = 1.0  # pause before the first retry; doubled before each next one
_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


class DownloadError(OSError):
    """A download stalled, was cut short or was refused, after its retries; names the (redacted) URL."""


class _Interrupted(DownloadError):
    """A stall or a cut: worth another try, which continues the partial file."""


def redact(text: str) -> str:
    """`text` with the password of any URL in it replaced: scheme://user:***@host."""
    return _PASSWORD.sub(r"\1:***@", str(text))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def partial_path(destination: Path) -> Path:
    return destination.with_name(destination.name + ".partial")


def fetch(
    url: str,
    destination: str | Path,
    *,
    timeout_s: float | None = None,
    retries: int | None = None,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination` (kept if it exists); raise DownloadError saying why, naming the URL.

    A stall or a cut is retried `retries` times (default DEFAULT_RETRIES); a refusal (404) or an address that
    does not resolve is not. Each read waits at most `timeout_s` (default DEFAULT_TIMEOUT_S).
    """
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    retries = DEFAULT_RETRIES if retries is None else retries
    destination = Path(destination)
    if destination.is_file():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, partial_path(destination), timeout_s, progress)
            break
        except _Interrupted as e:
            if attempt == retries:
                partial = partial_path(destination)
                if partial.is_file() and partial.stat().st_size == 0:  # kept only if a rerun can continue it
                    partial.unlink()
                raise DownloadError(f"{e} (after {retries + 1} tries)") from None
            pause = BACKOFF_S * 2**attempt
            logger.warning("%s; trying again in %g s", e, pause)
            time.sleep(pause)
    partial_path(destination).rename(destination)  # a finished name means a finished download
    return destination


def _request(url: str, headers: dict[str, str]) -> urllib.request.Request:
    """A GET of `url`; user:password@ in it becomes a Basic Authorization header (urllib would take it for the host)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers = {**headers, "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return urllib.request.Request(url, headers=headers)


def _fetch_once(url: str, partial: Path, timeout_s: float, progress: bool) -> None:
    """One request, appending to `partial` from where it ends when the server allows; DownloadError if it fails."""
    have = partial.stat().st_size if partial.is_file() else 0
    request = _request(url, {"Range": f"bytes={have}-"} if have else {})
    shown = redact(url)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already whole (or longer than the file): start anew
            partial.unlink()
            raise _Interrupted(f"{shown}: the partial download did not fit the file; starting anew") from None
        error = _Interrupted if e.code >= 500 else DownloadError  # a server error may pass; 404 will not
        raise error(f"{shown}: the server answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            raise _Interrupted(f"{shown}: stalled: no answer within {timeout_s:g} s") from None
        raise DownloadError(f"{shown}: cannot connect ({reason})") from None
    with response:
        resumed = response.status == 206
        if have and not resumed:
            have = 0  # the server sends the whole file: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        received = have
        try:
            with (
                open(partial, "ab" if resumed else "wb") as out,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=partial.name.removesuffix(".partial"), disable=not progress) as bar,
            ):  # fmt: skip
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except TimeoutError:
            raise _Interrupted(
                f"{shown}: stalled: no data for {timeout_s:g} s after {received:,} bytes"
                + (" (the partial file is kept and continued)" if received else "")
            ) from None
        except (ConnectionError, http.client.HTTPException) as e:
            raise _Interrupted(f"{shown}: cut short after {received:,} bytes ({e})") from None
    if total is not None and received < total:
        raise _Interrupted(f"{shown}: cut short: the connection closed after {received:,} of {total:,} bytes")
