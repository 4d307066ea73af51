"""Where a send's requests are made and posted (the poster), beside the sender's work in the store: a thread
of the sender (`ThreadPoster`), or a process of its own (`RequestProcess`).

Python runs one thread of a process at a time. Made on a thread beside the store's work, a request (a
thousand personalizations, then half a megabyte of JSON, each in one long call that nothing interrupts)
keeps the sender's thread from its database answers, and the two wait on each other. In a process of
its own, on a core of its own, each goes at its own pace.

The sender hands the process one batch at a time (`RequestProcess.submit`): the segment's rendering by
key (the renderings go over once, when it starts), the wave's time, the batch id and the people, whose
recipients are made there (`Audience.recipients_of`). The request is made at once and goes only on
`go`, as on the thread (`digest.delivery.sender`).
A provider takes part only if it can be made again in another process (`Provider.portable`, SendGrid's);
the others (SMTP, the outbox) post from the thread. The process is asked for by
`delivery.request_process_batches` (off by default: it costs a second process of about 100 MB; see
digest/delivery/README.md).

The process ignores SIGINT and SIGTERM: the sender stops it when the send stops, after the request in
flight is answered. If the sender dies, the process reads the end of the pipe and exits; a request it
was posting is then of unknown fate, as it would be on a thread. If the process dies, a request that was
told to go is of unknown fate (`FailureKind.UNKNOWN`), one that was not is not sent.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import IO, Any, Protocol

from digest.delivery.providers.base import BatchResult, Provider
from digest.email.message import OutgoingIssue, Recipient
from digest.errors import FailureKind, ProviderError

log = logging.getLogger(__name__)

# How long `close` waits for the process to end before it is killed.
_CLOSE_SECONDS = 10.0


class NotSent(Exception):
    """A request given up before anything was sent (the send stopped on an error)."""


class Request(Protocol):
    """One batch's request, made at once and sent on `go`."""

    def go(self) -> None: ...

    def cancel(self) -> None:
        """Never send it (if it has not gone yet)."""
        ...

    def answered(self, timeout: float) -> bool: ...

    def failure(self) -> BaseException | None:
        """Waits for the answer: None, or what failed (NotSent when it never went)."""
        ...

    def result(self) -> BatchResult: ...


# The audience's `recipients_of`: people (opaque but for their `id`) -> their recipients, and the ids of
# those whose recipient could not be made, with the reason.
MakeRecipients = Callable[[Sequence[Any]], tuple[list[Recipient], dict[int, str]]]


class Poster(Protocol):
    """Where a send's requests are made and posted, one at a time."""

    def submit(self, segment: str, outgoing: OutgoingIssue, batch_id: int, people: Sequence[Any]) -> Request:
        """`outgoing`: the rendering of `segment`, with the wave's `send_at` and `schedule_id` if any.
        The people's recipients are made there too: whoever's cannot be made is in the answer's `refused`."""
        ...

    def close(self) -> None: ...


def start_poster(
    provider: Provider, make: MakeRecipients, renderings: Mapping[str, OutgoingIssue], *, own_process: bool
) -> Poster:
    """A process of its own when asked and the provider can be made there (`Provider.portable`), else a thread."""
    portable = getattr(provider, "portable", None)
    make_provider = portable() if own_process and portable is not None else None
    thread = ThreadPoster(provider, make)
    if make_provider is None:
        return thread
    try:
        pickle.dumps((make_provider, make))
    except Exception as exc:  # an audience or provider changed in this process (a test's): the thread posts
        log.info("the requests are made on a thread: %s", exc)
        return thread
    return HandoffPoster(thread, RequestProcess(make_provider, make, renderings))


class ThreadPoster:
    """Threads of the sender's process (providers that cannot be made again elsewhere, small sends): two,
    so that the next request is made while the one before waits for its answer."""

    def __init__(self, provider: Provider, make: MakeRecipients):
        self._provider = provider
        self._make = make
        self._executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="digest-send")

    def submit(self, segment: str, outgoing: OutgoingIssue, batch_id: int, people: Sequence[Any]) -> ThreadRequest:
        send = functools.partial(make_request, self._make, self._provider, outgoing, batch_id, people)
        return ThreadRequest(self._executor, send)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class ThreadRequest:
    def __init__(self, executor: concurrent.futures.Executor, made: Callable[[], Callable[[], BatchResult]]) -> None:
        self._go = threading.Event()
        self._cancelled = False
        self._future = executor.submit(self._run, made)

    def _run(self, made: Callable[[], Callable[[], BatchResult]]) -> BatchResult:
        send = made()
        self._go.wait()
        if self._cancelled:
            raise NotSent
        return send()

    def go(self) -> None:
        self._go.set()

    def cancel(self) -> None:
        self._cancelled = True
        self._go.set()

    def answered(self, timeout: float) -> bool:
        done, _ = concurrent.futures.wait([self._future], timeout=timeout)
        return bool(done)

    def failure(self) -> BaseException | None:
        return self._future.exception()

    def result(self) -> BatchResult:
        return self._future.result()


class RequestProcess:
    """The child process (`python -m digest.delivery.posting`) and the two pipes to it. One request at a
    time: `submit` the next only once the previous one is answered or cancelled, and only once `ready`."""

    def __init__(
        self, make_provider: Callable[[], Provider], make: MakeRecipients, renderings: Mapping[str, OutgoingIssue]
    ):
        # A process of its own, not multiprocessing's: a fork would share the sender's database sockets,
        # and a spawn would import the sender's main module again before anything else.
        self._process = subprocess.Popen(  # noqa: S603 (this interpreter, our module)
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
        )
        if self._process.stdin is None or self._process.stdout is None:
            raise RuntimeError("the request process has no pipes")
        self.to = _connection(self._process.stdin, writable=True)
        self.answers = _connection(self._process.stdout, writable=False)
        self._ready = False
        self._waiting: collections.deque[ProcessRequest] = collections.deque()
        self.to.send((make_provider, make, dict(renderings)))

    def ready(self) -> bool:
        """Whether the process has started (its imports take a second, during which the thread posts)."""
        if not self._ready and self.answers.poll(0):
            try:
                self._ready = self.answers.recv() == ("ready",)
            except (EOFError, OSError):
                self._ready = False
        return self._ready

    def alive(self) -> bool:
        return self._process.poll() is None

    def submit(self, segment: str, outgoing: OutgoingIssue, batch_id: int, people: Sequence[Any]) -> ProcessRequest:
        # The rendering went over once: only its key and the wave's time cross the pipe, with the people
        # (a few columns each, a tenth of their recipients' size).
        self.to.send(("prepare", segment, outgoing.send_at, outgoing.schedule_id, batch_id, people))
        request = ProcessRequest(self)
        self._waiting.append(request)
        return request

    def read_answer(self) -> None:
        """The next answer, to the oldest request waiting for one."""
        request = self._waiting.popleft()
        try:
            kind, value = self.answers.recv()
        except (EOFError, OSError):
            request.lost(self._process.poll())
            while self._waiting:
                self._waiting.popleft().lost(self._process.poll())
            return
        request.settle(kind, value)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # gone already
            self.to.send(("stop",))
        try:
            self._process.wait(_CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self.to.close()
        self.answers.close()


class HandoffPoster:
    """The thread until the process is ready, then the process: a send does not wait for its start."""

    def __init__(self, thread: ThreadPoster, process: RequestProcess):
        self._thread = thread
        self._process = process

    def submit(self, segment: str, outgoing: OutgoingIssue, batch_id: int, people: Sequence[Any]) -> Request:
        if self._process.alive() and self._process.ready():
            try:
                return self._process.submit(segment, outgoing, batch_id, people)
            except OSError as exc:  # it died since it was asked: nothing of this request reached it
                log.warning("the request process is gone (%s); a thread posts from now on", exc)
        return self._thread.submit(segment, outgoing, batch_id, people)

    def close(self) -> None:
        try:
            self._thread.close()
        finally:
            self._process.close()


def _connection(pipe: IO[bytes], *, writable: bool) -> Connection:
    """A multiprocessing connection over one end of a pipe, its buffer grown to hold a batch's people."""
    fd = os.dup(pipe.fileno())
    pipe.close()
    with contextlib.suppress(OSError):  # Linux only; elsewhere the pipe keeps its size
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    return Connection(fd, readable=not writable, writable=writable)


_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in Python 3.10+ on Linux only
_PIPE_BYTES = 1 << 20


class ProcessRequest:
    """One batch's request in the process, with the interface of the thread's. Answers come in the order
    the requests were submitted: reading one reads those before it first (a cancelled one's, say)."""

    def __init__(self, owner: RequestProcess):
        self._owner = owner
        self._told: str | None = None  # "go" or "cancel"
        self._answer: tuple[BatchResult | None, BaseException | None] | None = None

    def go(self) -> None:
        self._tell("go")

    def cancel(self) -> None:
        if self._told is None:
            self._tell("cancel")

    def _tell(self, what: str) -> None:
        self._told = what
        with contextlib.suppress(OSError):  # the process is gone: its answer says what that means
            self._owner.to.send((what,))

    def answered(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._answer is None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._owner.answers.poll(left):
                return False
            self._owner.read_answer()
        return True

    def failure(self) -> BaseException | None:
        return self._receive()[1]

    def result(self) -> BatchResult:
        result, failure = self._receive()
        if failure is not None:
            raise failure
        if result is None:
            raise RuntimeError("the request process gave no answer")
        return result

    def _receive(self) -> tuple[BatchResult | None, BaseException | None]:
        while self._answer is None:
            self._owner.read_answer()
        return self._answer

    def settle(self, kind: str, value: Any) -> None:
        if kind == "answer":
            self._answer = (value, None)
        elif kind == "not_sent":
            self._answer = (None, NotSent())
        else:
            self._answer = (None, _rebuilt(value))

    def lost(self, exit_code: int | None) -> None:
        """The process ended before answering."""
        if self._told != "go":
            self._answer = (None, NotSent())
            return
        message = (
            f"the request process ended (exit code {exit_code}) while its request was being posted; "
            "it may have been accepted"
        )
        self._answer = (None, ProviderError(message, kind=FailureKind.UNKNOWN))


def _portable(exc: BaseException) -> tuple[str, Any]:
    """An exception as it crosses the pipe: a ProviderError's fields, or another exception's type and text."""
    if isinstance(exc, ProviderError):
        return "provider", (str(exc), exc.kind, exc.retry_after, exc.sent, exc.refused)
    return "other", f"{type(exc).__name__}: {exc}"


def _rebuilt(value: tuple[str, Any]) -> BaseException:
    kind, fields = value
    if kind == "provider":
        message, failure, retry_after, sent, refused = fields
        return ProviderError(message, kind=failure, retry_after=retry_after, sent=sent, refused=refused)
    return RuntimeError(f"the request process failed: {fields}")


def _serve(requests: Connection, answers: Connection) -> None:
    """The process's loop. This thread reads the sender's messages and makes each request as it comes
    (`prepare`), so that the next one is made while the one before is on its way; a thread of its own posts
    them in order on `go`, and every answer (a post's, or a cancel's `not_sent`) leaves in the order the
    requests came, which is the order the sender reads them in."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The thread that posts waits for the one making the next request to let go of the interpreter: at
    # the default 5 ms, a request told to go waited that long to leave.
    sys.setswitchinterval(0.0005)
    make_provider, make, renderings = requests.recv()
    provider: Provider = make_provider()
    answers.send(("ready",))
    outbound: queue.SimpleQueue[Callable[[], BatchResult] | tuple[str, Any] | None] = queue.SimpleQueue()
    poster = threading.Thread(target=_post_in_order, args=(outbound, answers), name="digest-post", daemon=True)
    poster.start()
    made: collections.deque[tuple[Callable[[], BatchResult] | None, BaseException | None]] = collections.deque()
    try:
        while True:
            try:
                message = requests.recv()
            except EOFError:
                return  # the sender is gone
            if message[0] == "stop":
                return
            if message[0] == "prepare":
                _, segment, send_at, schedule_id, batch_id, people = message
                outgoing = renderings[segment]
                if send_at is not None:
                    outgoing = dataclasses.replace(outgoing, send_at=send_at, schedule_id=schedule_id)
                try:
                    made.append((make_request(make, provider, outgoing, batch_id, people), None))
                except Exception as exc:
                    made.append((None, exc))
                continue
            send, error = made.popleft()  # its go or cancel
            if error is not None:
                outbound.put(("failed", _portable(error)))
            elif message[0] == "go" and send is not None:
                outbound.put(send)
            else:
                outbound.put(("not_sent", None))
    finally:
        outbound.put(None)
        poster.join()
        provider.close()


def _post_in_order(outbound: queue.SimpleQueue[Any], answers: Connection) -> None:
    try:
        while (item := outbound.get()) is not None:
            if not callable(item):
                answers.send(item)
                continue
            try:
                answer: tuple[str, Any] = ("answer", item())
            except Exception as exc:
                answer = ("failed", _portable(exc))
            answers.send(answer)
    except (BrokenPipeError, OSError):
        return  # the sender is gone


def main() -> None:
    """`python -m digest.delivery.posting`: requests on standard input, answers on standard output (which
    nothing else may write to: print and logging go to standard error)."""
    requests = Connection(os.dup(0), writable=False)
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(requests, answers)


def make_request(
    make: MakeRecipients, provider: Provider, outgoing: OutgoingIssue, batch_id: int, people: Sequence[Any]
) -> Callable[[], BatchResult]:
    """The people's recipients and their request made now, to be sent by the call returned; whoever's
    recipient could not be made is in its answer's `refused` (or its failure's)."""
    recipients, unbuilt = make(people)
    send = _prepared(provider, outgoing, recipients, batch_id)
    if not unbuilt:
        return send

    def send_all() -> BatchResult:
        try:
            result = send()
        except ProviderError as exc:
            exc.refused = {**unbuilt, **exc.refused}
            raise
        result.refused = {**unbuilt, **result.refused}
        return result

    return send_all


def _prepared(
    provider: Provider, outgoing: OutgoingIssue, recipients: list[Recipient], batch_id: int
) -> Callable[[], BatchResult]:
    """The request made now, to be sent by the call returned."""
    if not recipients:
        return BatchResult
    prepare = getattr(provider, "prepare_batch", None)
    if prepare is not None:
        prepared: Callable[[], BatchResult] = prepare(outgoing, recipients, batch_id=batch_id)
        return prepared
    return lambda: provider.send_batch(outgoing, recipients, batch_id=batch_id)


if __name__ == "__main__":
    main()
