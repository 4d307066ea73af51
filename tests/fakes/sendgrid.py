"""A fake SendGrid v3 Mail Send API: a real HTTP server on 127.0.0.1 that checks every request against
SendGrid's documented limits and answers on a schedule (202, an error status, a dropped connection, a
delay), recording every recipient it accepted.

    with FakeSendGrid(schedule=["accept", 429, "drop", 500]) as fake:
        ...  # point DIGEST_SENDGRID_API_HOST at fake.url
        assert fake.violations == []

Limits checked (https://docs.sendgrid.com/api-reference/mail-send/mail-send): a Bearer key; at most 1000
personalizations and 1000 recipients (to + cc + bcc) per request, none twice; substitutions at most
10,000 bytes per personalization; custom_args under 10,000 bytes; at most 10 categories; none of the
reserved headers; a body under 30 MB; content text/plain before text/html; from and subject present.

Like SendGrid, it can report what it accepted through the Event Webhook: `events()` makes the events of
the accepted requests (each carrying the request's custom_args, as SendGrid's do), `WebhookSigner`
signs a body as SendGrid does (ECDSA P-256 over timestamp + body) and `post_events()` posts them.

    with FakeSendGrid(schedule=[("accept_then_hang", 60)]) as fake:
        ...  # the sender times out: the batch is unknown
        signer = WebhookSigner()  # its public_b64 goes in DIGEST_SENDGRID_WEBHOOK_PUBLIC_KEY
        post_events(site_url, signer, fake.events(["processed"]))

With keep_bodies, `messages()` gives what SendGrid would deliver: every substitution key replaced
wherever it occurs in the subject and content, so a key that content could hold shows up as a leak.

Run alone (for benchmarks, so that its memory is not the sender's):
    python -m tests.fakes.sendgrid [--api-key K] [--count-only] [--latency SECONDS] [--faults-every N ...]
prints its URL on the first line; GET /_stats answers the counts as JSON, GET /_accepted the accepted
requests (message id, recipients, custom_args).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_BODY = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTIONS = 10_000
MAX_CUSTOM_ARGS = 10_000
MAX_CATEGORIES = 10
MAX_SCHEDULE_AHEAD = 72 * 3600  # send_at: at most 72 hours ahead
RESERVED = {
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding",
    "to", "from", "subject", "reply-to", "cc", "bcc",
}  # fmt: skip

# An action is "accept", an HTTP status (int), "drop" (read the request, close without answering,
# accept nothing), ("delay", s) (wait, then accept), ("accept_then_hang", s) (accept and record, then
# hold the answer for s seconds: the client cannot know the fate) or ("hang", s) (hold, accept nothing).
Action = str | int | tuple[str, float]


def validate(body: dict) -> list[str]:
    """Every way the request breaks SendGrid's documented limits."""
    problems: list[str] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return ["personalizations: at least one is required"]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        problems.append(f"personalizations: {len(personalizations)} > {MAX_PERSONALIZATIONS}")
    seen: set[str] = set()
    recipients = 0
    top_args = body.get("custom_args") or {}
    for i, p in enumerate(personalizations):
        for kind in ("to", "cc", "bcc"):
            for address in p.get(kind) or []:
                recipients += 1
                email = str(address.get("email", "")).lower()
                if not email or "@" not in email:
                    problems.append(f"personalizations[{i}].{kind}: invalid email {email!r}")
                if email in seen:
                    problems.append(f"personalizations[{i}].{kind}: {email} appears twice in one request")
                seen.add(email)
        if not p.get("to"):
            problems.append(f"personalizations[{i}].to: required")
        subs = p.get("substitutions") or {}
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in subs.items())
        if size > MAX_SUBSTITUTIONS:
            problems.append(f"personalizations[{i}].substitutions: {size} bytes > {MAX_SUBSTITUTIONS}")
        args = {**top_args, **(p.get("custom_args") or {})}
        if len(json.dumps(args).encode()) >= MAX_CUSTOM_ARGS:
            problems.append(f"personalizations[{i}].custom_args: not under {MAX_CUSTOM_ARGS} bytes")
        if any(not isinstance(v, str) for v in args.values()):
            problems.append(f"personalizations[{i}].custom_args: values must be strings")
        for name in p.get("headers") or {}:
            if name.lower() in RESERVED:
                problems.append(f"personalizations[{i}].headers: {name} is reserved")
        if not (p.get("subject") or body.get("subject")):
            problems.append(f"personalizations[{i}].subject: required")
    if recipients > MAX_RECIPIENTS:
        problems.append(f"recipients: {recipients} > {MAX_RECIPIENTS}")
    for name in body.get("headers") or {}:
        if name.lower() in RESERVED:
            problems.append(f"headers: {name} is reserved")
    if len(body.get("categories") or []) > MAX_CATEGORIES:
        problems.append(f"categories: more than {MAX_CATEGORIES}")
    if not (body.get("from") or {}).get("email"):
        problems.append("from.email: required")
    types = [c.get("type") for c in body.get("content") or []]
    if not types:
        problems.append("content: required")
    if "text/plain" in types and "text/html" in types and types.index("text/plain") > types.index("text/html"):
        problems.append("content: text/plain must come before text/html")
    return problems


@dataclass
class Accepted:
    request: int
    message_id: str
    emails: list[str]
    custom_args: dict
    body: dict | None  # kept only when keep_bodies is on
    send_at: int | None = None  # a scheduled request: when SendGrid is to deliver it (Unix time)
    batch_id: str | None = None  # the batch id it was scheduled under (POST /v3/mail/batch)
    accepted_at: float = 0.0  # the fake's clock when it was accepted


def delivered(body: dict) -> list[dict]:
    """The messages SendGrid would make of an accepted body, one per personalization: as SendGrid does, each
    substitution key is replaced wherever it occurs in the subject and every content part, one key after
    the other (a value that holds another key gets that one replaced too)."""
    messages = []
    for p in body["personalizations"]:
        subject = p.get("subject") or body.get("subject") or ""
        parts = {c["type"]: c["value"] for c in body.get("content") or []}
        for key, value in (p.get("substitutions") or {}).items():
            subject = subject.replace(key, value)
            parts = {kind: text.replace(key, value) for kind, text in parts.items()}
        messages.append(
            {
                "to": [a["email"] for a in p.get("to", [])],
                "subject": subject,
                "text": parts.get("text/plain", ""),
                "html": parts.get("text/html", ""),
                # A personalization's headers are added to the request's own, and win on a clash.
                "headers": {**(body.get("headers") or {}), **(p.get("headers") or {})},
            }
        )
    return messages


@dataclass
class FakeSendGrid:
    api_key: str = "SG.fake-key"
    schedule: Iterable[Action] | Callable[[int], Action] = ()
    keep_bodies: bool = False
    count_only: bool = False  # for benchmarks: no per-recipient lists, only counts
    rate_limit_reset_in: float = 1.0
    # What GET /v3/scopes answers for the right key (a key made with the Mail Send permission only).
    scopes: list[str] = field(default_factory=lambda: ["mail.batch.create", "mail.send", "user.scheduled_sends.create"])

    requests: int = 0
    accepted: list[Accepted] = field(default_factory=list)
    recipient_counts: Counter = field(default_factory=Counter)
    accepted_recipients: int = 0
    violations: list[str] = field(default_factory=list)
    answers: list = field(default_factory=list)  # the action taken for each request, in order
    peers: dict = field(default_factory=dict)  # request number -> the client's TCP port (who sent it)
    # Scheduled sends: the fake's clock (a test's injected one), the batch ids it made and those cancelled
    # (batch id -> the clock when it was cancelled).
    clock: Callable[[], float] = time.time
    batch_ids: list[str] = field(default_factory=list)
    cancelled: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._received = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self.set_schedule(self.schedule)

    def set_schedule(self, schedule: Iterable[Action] | Callable[[int], Action]) -> None:
        """What to answer from now on: a function of the request number, or a list then "accept"."""
        if callable(schedule):
            self._next: Callable[[int], Action] = schedule
        else:
            upcoming = iter(list(schedule))
            self._next = lambda _n: next(upcoming, "accept")

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeSendGrid:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The environment that makes the digest send through this fake."""
        return {
            "DIGEST_PROVIDER": "sendgrid",
            "DIGEST_SENDGRID_API_KEY": self.api_key,
            "DIGEST_SENDGRID_API_HOST": self.url,
        }

    # --- what tests look at ----------------------------------------------------------------------
    @property
    def emails(self) -> list[str]:
        """Every accepted recipient, once per time it was accepted."""
        return list(self.recipient_counts.elements())

    @property
    def duplicates(self) -> dict[str, int]:
        return {e: n for e, n in self.recipient_counts.items() if n > 1}

    def messages(self) -> list[dict]:
        """Every message delivered so far, substituted as SendGrid would (needs keep_bodies)."""
        return [m for a in self.accepted if a.body is not None for m in delivered(a.body)]

    def wait_for_requests(self, n: int, timeout: float = 30.0) -> bool:
        with self._received:
            return self._received.wait_for(lambda: self.requests >= n, timeout)

    def stats(self) -> dict:
        counts = self.recipient_counts.values()
        return {
            "requests": self.requests,
            "accepted_requests": len(self.accepted) if not self.count_only else self._accepted_requests,
            "accepted_recipients": self.accepted_recipients,
            "distinct_recipients": len(self.recipient_counts),
            "min_per_recipient": min(counts, default=0),
            "max_per_recipient": max(counts, default=0),
            "duplicates": len(self.duplicates),
            "violations": self.violations[:20],
        }

    def check_schedule(self, body: dict) -> list[str]:
        """SendGrid's rules for a scheduled request: send_at a Unix time at most 72 hours ahead, and a
        batch_id only one that POST /v3/mail/batch made."""
        problems: list[str] = []
        send_at = body.get("send_at")
        if send_at is not None:
            if not isinstance(send_at, int) or isinstance(send_at, bool):
                problems.append(f"send_at: must be an integer Unix time, not {send_at!r}")
            elif send_at > self.clock() + MAX_SCHEDULE_AHEAD:
                problems.append(f"send_at: {send_at} is more than 72 hours ahead of {int(self.clock())}")
        batch_id = body.get("batch_id")
        if batch_id is not None and batch_id not in self.batch_ids:
            problems.append(f"batch_id: {batch_id!r} was not made by POST /v3/mail/batch")
        return problems

    def delivered_at(self, moment: float) -> list[tuple[str, float]]:
        """(address, when) of every accepted recipient SendGrid would have delivered by `moment`: a scheduled
        request at its send_at, unless its batch id was cancelled ten minutes or more before that."""
        out = []
        with self._lock:
            for a in self.accepted:
                when = float(a.send_at) if a.send_at is not None else a.accepted_at
                cancelled = self.cancelled.get(a.batch_id or "")
                if cancelled is not None and a.send_at is not None and cancelled <= a.send_at - 600:
                    continue
                if when <= moment:
                    out.extend((e, when) for e in a.emails)
        return out

    def accepted_requests(self) -> list[dict]:
        with self._lock:
            return [
                {"request": a.request, "message_id": a.message_id, "emails": a.emails, "custom_args": a.custom_args}
                for a in self.accepted
            ]

    def events(self, kinds: Iterable[str] = ("processed",), requests: Iterable[int] | None = None) -> list[dict]:
        """The events SendGrid would post for the accepted requests (all, or those numbered `requests`)."""
        return events_for(self.accepted_requests(), kinds, requests)

    _accepted_requests: int = 0

    # --- the server side -------------------------------------------------------------------------
    def _take_action(self) -> tuple[int, Action]:
        with self._received:
            self.requests += 1
            number = self.requests
            action = self._next(number)
            self.answers.append(action)
            self._received.notify_all()
        return number, action

    def _accept(self, number: int, body: dict) -> str:
        message_id = secrets.token_urlsafe(16)
        emails = [a["email"].lower() for p in body["personalizations"] for a in p.get("to", [])]
        with self._lock:
            self.accepted_recipients += len(emails)
            self._accepted_requests += 1
            if not self.count_only:
                self.recipient_counts.update(emails)
                args = {**(body.get("custom_args") or {}), **(body["personalizations"][0].get("custom_args") or {})}
                self.accepted.append(
                    Accepted(
                        number,
                        message_id,
                        emails,
                        args,
                        body if self.keep_bodies else None,
                        body.get("send_at"),
                        body.get("batch_id"),
                        self.clock(),
                    )
                )
        return message_id

    def release(self) -> None:
        """End every hold now (a delay, a hang): for tests that hold a request until they have looked."""
        self._stopping.set()

    def _hold(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeSendGrid
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: tests read the recorded requests instead
        pass

    def _answer(self, status: int, payload: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _error(self, status: int, message: str, field: str | None = None, headers: dict | None = None) -> None:
        self._answer(status, {"errors": [{"message": message, "field": field, "help": None}]}, headers)

    def do_GET(self) -> None:
        if self.path == "/_stats":
            self._answer(200, self.owner.stats())
        elif self.path == "/_accepted":
            self._answer(200, self.owner.accepted_requests())
        elif self.path == "/v3/scopes":
            if self.headers.get("Authorization") != f"Bearer {self.owner.api_key}":
                self._error(401, "The provided authorization grant is invalid, expired, or revoked")
            else:
                self._answer(200, {"scopes": self.owner.scopes})
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        if self.path in ("/v3/mail/batch", "/v3/user/scheduled_sends"):
            self._scheduling(length)
            return
        if self.path != "/v3/mail/send":
            self._error(404, f"no such endpoint {self.path}")
            return
        if length > MAX_BODY:
            owner.violations.append(f"body: {length} bytes > 30 MB")
            self._error(413, "request body too large")
            return
        raw = self.rfile.read(length)
        if self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._error(401, "The provided authorization grant is invalid, expired, or revoked")
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            owner.violations.append(f"body: not UTF-8 JSON: {exc}")
            self._error(400, "Bad Request: the JSON body could not be parsed")
            return
        problems = validate(body) + owner.check_schedule(body)
        if problems:
            owner.violations.extend(problems)
            self._error(400, problems[0])
            return
        number, action = owner._take_action()
        owner.peers[number] = self.client_address[1]
        if isinstance(action, tuple):
            kind, seconds = action
            if kind == "delay":
                owner._hold(seconds)
                action = "accept"
            elif kind == "accept_then_hang":
                owner._accept(number, body)
                owner._hold(seconds)
                self._drop()
                return
            elif kind == "hang":
                owner._hold(seconds)
                self._drop()
                return
        if action == "accept":
            message_id = owner._accept(number, body)
            self._answer(202, None, {"X-Message-Id": message_id})
        elif action == "drop":
            self._drop()
        elif action == 429:
            reset = int(time.time() + owner.rate_limit_reset_in)
            headers = {"X-RateLimit-Limit": 600, "X-RateLimit-Remaining": 0, "X-RateLimit-Reset": reset}
            self._error(429, "too many requests", headers=headers)
        elif action == 413:
            self._error(413, "The JSON payload you have included in your request is too large.")
        elif action == 401:
            self._error(401, "The provided authorization grant is invalid, expired, or revoked")
        elif isinstance(action, int):
            self._error(
                action,
                "simulated failure" if action >= 500 else "The from address does not match a verified Sender Identity.",
                "from.email" if action == 403 else None,
            )
        else:
            raise ValueError(f"unknown action {action!r}")

    def _scheduling(self, length: int) -> None:
        """POST /v3/mail/batch (a new batch id) and POST /v3/user/scheduled_sends (cancel or pause one)."""
        owner = self.owner
        raw = self.rfile.read(length)
        if self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._error(401, "The provided authorization grant is invalid, expired, or revoked")
            return
        if self.path == "/v3/mail/batch":
            made = secrets.token_urlsafe(24)
            with owner._lock:
                owner.batch_ids.append(made)
            self._answer(201, {"batch_id": made})
            return
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            self._error(400, "Bad Request: the JSON body could not be parsed")
            return
        if body.get("batch_id") not in owner.batch_ids:
            owner.violations.append(f"scheduled_sends: unknown batch_id {body.get('batch_id')!r}")
            self._error(400, "invalid batch id", "batch_id")
            return
        if body.get("status") not in ("cancel", "pause"):
            owner.violations.append(f"scheduled_sends: status {body.get('status')!r}")
            self._error(400, "status must be cancel or pause", "status")
            return
        if body["status"] == "cancel":
            with owner._lock:
                owner.cancelled.setdefault(body["batch_id"], owner.clock())
        self._answer(201, {"batch_id": body["batch_id"], "status": body["status"]})

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def events_for(accepted: list[dict], kinds: Iterable[str] = ("processed",), requests=None) -> list[dict]:
    """One event of each kind per recipient of each accepted request, shaped as SendGrid's: the request's
    custom_args as top-level fields, sg_message_id starting with the request's X-Message-Id."""
    wanted = set(requests) if requests is not None else None
    now = int(time.time())
    events = []
    for request in accepted:
        if wanted is not None and request["request"] not in wanted:
            continue
        for i, email in enumerate(request["emails"]):
            for kind in kinds:
                events.append(
                    {
                        **request["custom_args"],
                        "email": email,
                        "event": kind,
                        "timestamp": now,
                        "sg_event_id": f"{request['message_id']}-{i}-{kind}",
                        "sg_message_id": f"{request['message_id']}.recvd-fake-{i}",
                    }
                )
    return events


class WebhookSigner:
    """Signs Event Webhook bodies as SendGrid does; `public_b64` is the Verification Key it shows."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_b64 = base64.b64encode(der).decode()

    def headers(self, body: bytes, when: float | None = None) -> dict[str, str]:
        timestamp = str(int(time.time() if when is None else when))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        }


def post_events(
    base_url: str, signer: WebhookSigner | None, events: list[dict], *, chunk: int = 1000, when: float | None = None
) -> list[httpx.Response]:
    """Post events to our /webhooks/sendgrid in batches of `chunk`, signed (signer None: unsigned)."""
    answers = []
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for first in range(0, len(events), chunk):
            body = json.dumps(events[first : first + chunk]).encode()
            headers = signer.headers(body, when) if signer else {"Content-Type": "application/json"}
            answers.append(client.post("/webhooks/sendgrid", content=body, headers=headers))
    return answers


def every(n: int, actions: Iterable[Action]) -> Callable[[int], Action]:
    """A schedule: request k gets the next of `actions` when k is a multiple of n, else accept."""
    cycle = itertools.cycle(list(actions))
    return lambda k: next(cycle) if k % n == 0 else "accept"


def _schedule(faults_every: int, faults: list[int], at: list[str], latency: float = 0.0) -> Callable[[int], Action]:
    special = {}
    for item in at:
        number, kind, seconds = item.split(":")
        special[int(number)] = (kind, float(seconds))
    regular = every(faults_every, faults) if faults_every else (lambda _n: "accept")

    def answer(n: int) -> Action:
        action = special.get(n) or regular(n)
        return ("delay", latency) if latency and action == "accept" else action

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", default="SG.fake-key")
    parser.add_argument("--count-only", action="store_true")
    parser.add_argument("--faults-every", type=int, default=0, help="every Nth request gets the next of --faults")
    parser.add_argument("--faults", nargs="*", type=int, default=[429, 500, 503], help="HTTP statuses, in turn")
    parser.add_argument(
        "--at", action="append", default=[], metavar="N:KIND:SECONDS", help="request N gets (KIND, SECONDS)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each accepted request is answered")
    args = parser.parse_args()
    fake = FakeSendGrid(api_key=args.api_key, count_only=args.count_only)
    fake.set_schedule(_schedule(args.faults_every, args.faults, args.at, args.latency))
    fake.start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
