"""Extraction in a child process that is killed and replaced when a page runs past its budget.

SIGALRM fires only between Python bytecodes, so a long lxml or lexbor call runs past it; a separate process can
be stopped whatever it is doing. The child reads pages from a pipe and answers each with its text and title; the
parent waits at most `timeout_s` per page, then kills the child (the next page starts a fresh one). A child that
dies (a crash in C code, the OOM killer) costs its page only. Plain subprocess + pipes, not multiprocessing:
PySpark's Python workers are forked daemons, and this works the same in them, in a driver and under pytest.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import struct
import subprocess
import sys
import time

from refinery.udfs.ingest.extract import Extracted, ExtractionTimeout, Extractor, extract_main_text

_LEN = struct.Struct("!I")
_NO_TITLE = 0xFFFFFFFF
_STARTUP_S = 300.0  # importing an extractor on a loaded executor can take a while; not part of a page's budget
_WARMUP_HTML = "<html><head><title>t</title></head><body><article><p>warm up the extractor.</p></article></body></html>"


class ExtractionCrashed(Exception):
    """The extraction process died while working on a page: counted `failed_extraction_crashed`."""


class ExtractionUnavailable(RuntimeError):
    """The extraction process cannot start at all: a setup problem, so it fails the file, not page after page."""


class ExtractionFailed(Exception):
    """The extractor raised on a page (in the child): counted `failed_extraction_error`."""


class ExtractionSupervisor:
    """One long-lived extraction child per Python worker; `extract` is `extract_main_text` with a hard budget."""

    def __init__(self, extractor: Extractor, timeout_s: float | None):
        self.extractor = extractor
        self.timeout_s = timeout_s
        self.starts = 0  # children started; more than one means pages were killed or crashed
        self._proc: subprocess.Popen | None = None
        self._to_child = self._from_child = -1

    def extract(self, html: str) -> Extracted:
        self._ensure_child()
        payload = html.encode("utf-8", "surrogatepass")
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        try:
            self._send(_LEN.pack(len(payload)) + payload, deadline)
            kind = self._recv(1, deadline)
            if kind == b"o":
                text = self._recv_str(deadline)
                title = self._recv_str(deadline)
                return Extracted(text or "", title)
            raise ExtractionFailed(self._recv_str(deadline))
        except TimeoutError:
            self.close()
            raise ExtractionTimeout(f"extraction took longer than {self.timeout_s}s; its process was killed") from None
        except (EOFError, BrokenPipeError) as err:
            code = self._reap()
            raise ExtractionCrashed(f"extraction process died ({_exit_reason(code)})") from err

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._reap()

    def _ensure_child(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._reap()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            # The extractor's own prints go to stderr; the pipes carry only the protocol.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "refinery.udfs.ingest.extract_supervisor", self.extractor,
                 str(to_child_r), str(from_child_w)],
                stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno() if _has_fd(sys.stderr) else None,
                pass_fds=(to_child_r, from_child_w), close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._to_child, self._from_child = to_child_w, from_child_r
        self.starts += 1
        try:
            if self._recv(1, time.monotonic() + _STARTUP_S) != b"r":
                raise EOFError
        except (EOFError, TimeoutError) as err:
            code = self._reap()
            raise ExtractionUnavailable(f"the extraction process ({sys.executable} -m "
                                        f"refinery.udfs.ingest.extract_supervisor {self.extractor}) did not start "
                                        f"({_exit_reason(code)}); is refinery installed on this node? "
                                        "ingest.isolate_extraction=false extracts in-process") from err

    def _reap(self) -> int | None:
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                os.close(fd)
        self._to_child = self._from_child = -1
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        return proc.wait()

    def _send(self, data: bytes, deadline: float | None) -> None:
        view = memoryview(data)
        while view:
            _wait(self._to_child, deadline, write=True)
            view = view[os.write(self._to_child, view[: 1 << 20]):]

    def _recv(self, n: int, deadline: float | None) -> bytes:
        out = bytearray()
        while len(out) < n:
            _wait(self._from_child, deadline, write=False)
            chunk = os.read(self._from_child, min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def _recv_str(self, deadline: float | None) -> str | None:
        (n,) = _LEN.unpack(self._recv(4, deadline))
        return None if n == _NO_TITLE else self._recv(n, deadline).decode("utf-8", "surrogatepass")


def _wait(fd: int, deadline: float | None, write: bool) -> None:
    timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
    ready = select.select([], [fd], [], timeout) if write else select.select([fd], [], [], timeout)
    if not (ready[1] if write else ready[0]):
        raise TimeoutError


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _has_fd(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


_SHARED: dict[tuple[str, float | None], ExtractionSupervisor] = {}


def shared_supervisor(extractor: Extractor, timeout_s: float | None) -> ExtractionSupervisor:
    """The worker process's supervisor for these settings; Spark's worker reuse keeps its child across tasks."""
    key = (extractor, timeout_s)
    if key not in _SHARED:
        _SHARED[key] = ExtractionSupervisor(extractor, timeout_s)
    return _SHARED[key]


@atexit.register
def _close_all() -> None:
    for supervisor in _SHARED.values():
        supervisor.close()


# ---- the child -------------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    # A parent killed outright (an executor lost) must not leave a child spinning in C code: ask the kernel to
    # SIGKILL us when the parent goes. Linux only; elsewhere the closed pipe ends the loop at the next page.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_main(extractor: Extractor, read_fd: int, write_fd: int) -> None:
    _die_with_parent()
    requests, replies = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    extract_main_text(_WARMUP_HTML, extractor)  # first-call imports happen now, outside any page's budget
    replies.write(b"r")
    replies.flush()
    while len(header := requests.read(4)) == 4:
        html = requests.read(_LEN.unpack(header)[0]).decode("utf-8", "surrogatepass")
        try:
            result = extract_main_text(html, extractor)
            reply = b"o" + _pack(result.text) + _pack(result.title)
        except Exception as err:  # noqa: BLE001 - reported to the parent, which counts it
            reply = b"e" + _pack(f"{type(err).__name__}: {err}")
        replies.write(reply)
        replies.flush()


def _pack(value: str | None) -> bytes:
    if value is None:
        return _LEN.pack(_NO_TITLE)
    data = value.encode("utf-8", "surrogatepass")
    return _LEN.pack(len(data)) + data


if __name__ == "__main__":
    _child_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))  # type: ignore[arg-type]
