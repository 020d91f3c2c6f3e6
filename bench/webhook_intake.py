"""Webhook intake: sustained signed callbacks per second into `cosell serve`, nothing lost.

Setup (in a temporary directory): both sandboxes (`cosell sandbox up`, state in a data
directory), the webhook registered (`cosell webhooks register`), then `cosell serve` as its
own process on a free loopback port. The service trusts the sandbox's root CA and downloads the
sandbox's signing certificate, exactly as it does in the demo.

Load (this process): callbacks signed as the Partner Center sandbox signs them (the same JSON
body, RSA-SHA256 with the sandbox's leaf key read from its data directory, the same headers),
all signed before the clock starts so that signing costs the measurement nothing. Every
callback is a distinct event (its `ResourceChangeUtcDate` differs by a microsecond), spread
over `--referrals` referral ids, so the inbox cannot coalesce two of them. `--concurrency`
keep-alive connections send them on a schedule of `--rate` per second (0: as fast as the
service answers); answer time is measured from writing the request to reading the answer.

At the end every callback answered 200 is looked up in the store's inbox by its event id (the
SHA-256 of the body): `lost` counts accepted callbacks that are not there. `drained` is how long
the inbox took, after the load stopped, until no event was pending (the service turns inbox
rows into reconciles in the background). `serve CPU ms/callback` is the CPU time the serve
process used while the load ran (the intake and the reconciles it ran meanwhile) per accepted
callback: a figure that does not depend on how busy the rest of the machine is.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import benchkit
from rich.console import Console

from cosell_sandbox.partnercenter.certs import DispatchCertificates
from cosell_sandbox.partnercenter.webhooks import format_change_date

WEBHOOK_PATH = "/webhooks/partner-center"
START_TIMEOUT = 60.0  # seconds for a child process to print its startup line
TARGET_RATE = 1000.0  # callbacks per second
TARGET_P99_MS = 50.0


@dataclass
class Callback:
    """One signed callback, ready to write on a connection."""

    event_id: str
    request: bytes


@dataclass
class Results:
    """What the load saw."""

    latencies_ms: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # event ids answered 200
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0


def options() -> argparse.Namespace:
    """The command line."""
    parser = benchkit.parser(__doc__.splitlines()[0] if __doc__ else "webhook intake")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to send (15)")
    parser.add_argument(
        "--rate",
        type=float,
        default=1200.0,
        help="callbacks per second to offer (1200); 0 sends as fast as the service answers",
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="keep-alive connections sending (32)"
    )
    parser.add_argument(
        "--referrals", type=int, default=500, help="distinct referral ids the events name (500)"
    )
    parser.add_argument(
        "--max-callbacks",
        type=int,
        default=30_000,
        help="callbacks signed in advance when --rate is 0 (30000)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the working directory (logs, store, settings) and print where it is",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the inbox to drain after the load (60)",
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate < 0 or args.concurrency < 1 or args.referrals < 1:
        parser.error("--seconds, --concurrency and --referrals must be positive, --rate >= 0")
    return args


# -- the deployment ------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def _first_line(proc: subprocess.Popen[str], what: str) -> str:
    box: list[str] = []
    reader = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(START_TIMEOUT)
    if not box or not box[0]:
        raise SystemExit(f"{what} printed no startup line within {START_TIMEOUT:.0f} s")
    return box[0]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """The sandboxes and `cosell serve`, each its own process, in `directory`."""

    directory: Path
    port: int
    certificate_url: str
    signer: DispatchCertificates
    serve_pid: int

    @property
    def store_file(self) -> Path:
        return self.directory / "cosell.db"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cosell.cli", *args]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def deployment(*, keep: bool) -> Iterator[Deployment]:
    """Start the sandboxes, register the webhook, start `cosell serve`; stop them on exit."""
    with contextlib.ExitStack() as stack:
        if keep:
            directory = Path(tempfile.mkdtemp(prefix="cosell-intake-"))
            print(f"working directory (kept): {directory}", file=sys.stderr)
        else:
            directory = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="cosell-intake-"))
            )
        port = _free_port()
        env = _env(COSELL_SERVER__PUBLIC_URL=f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
        logs: list[IO[str]] = []
        procs: list[subprocess.Popen[str]] = []

        def start(args: list[str], log_name: str) -> subprocess.Popen[str]:
            log = (directory / log_name).open("w")
            logs.append(log)
            proc = subprocess.Popen(
                args, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
            procs.append(proc)
            return proc

        try:
            sandboxes = start(
                _cli(
                    "sandbox",
                    "up",
                    "--json",
                    "--pc-port",
                    "0",
                    "--sf-port",
                    "0",
                    "--data-dir",
                    "sandboxes",
                    "--write-config",
                    "cosell.toml",
                ),
                "sandboxes.log",
            )
            pc = json.loads(_first_line(sandboxes, "cosell sandbox up"))["partner_center"]
            registered = subprocess.run(
                _cli("webhooks", "register", "--config", "cosell.toml"),
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if registered.returncode != 0:
                raise SystemExit(f"cosell webhooks register failed:\n{registered.stderr}")
            serve = start(
                _cli("serve", "--config", "cosell.toml", "--port", str(port)), "serve.log"
            )
            _first_line(serve, "cosell serve")
            yield Deployment(
                directory, port, pc["certificate_url"], _signing_key(directory), serve.pid
            )
        finally:
            for proc in reversed(procs):
                _stop(proc)
            for log in logs:
                log.close()


def _signing_key(directory: Path) -> DispatchCertificates:
    """The sandbox's signing certificates, from its data directory (saved by the registration)."""
    path = directory / "sandboxes" / "partner-center.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT body FROM state WHERE name = 'webhooks'").fetchone()
    if row is None:
        raise SystemExit(f"{path} holds no webhook state; did the registration run?")
    return DispatchCertificates.from_json(json.loads(row[0])["certificates"])


# -- the callbacks ------------------------------------------------------------------------------


def sign_callbacks(target: Deployment, count: int, referrals: int) -> list[Callback]:
    """`count` distinct referral events over `referrals` ids, signed as the sandbox signs them."""
    ids = [str(uuid.uuid4()) for _ in range(referrals)]
    base = datetime.now(UTC)
    pc_base = target.certificate_url.split("/cert/", 1)[0]
    callbacks: list[Callback] = []
    for n in range(count):
        referral_id = ids[n % referrals]
        body = json.dumps(
            {
                "EventName": "referral-updated",
                "ResourceUri": f"{pc_base}/v1.0/engagements/referrals/{referral_id}",
                "ResourceName": "referral",
                "AuditUri": None,
                "ResourceChangeUtcDate": format_change_date(base + timedelta(microseconds=n)),
            },
            separators=(",", ":"),
        ).encode("utf-8")
        signature = base64.b64encode(target.signer.sign(body)).decode("ascii")
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{target.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Authorization: Signature {signature}\r\n"
            f"X-MS-Certificate-Url: {target.certificate_url}\r\n"
            "X-MS-Signature-Algorithm: rsa-sha256\r\n\r\n"
        )
        callbacks.append(Callback(hashlib.sha256(body).hexdigest(), head.encode() + body))
    return callbacks


# -- the load -----------------------------------------------------------------------------------


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer; return its status."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the service closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


async def send(
    port: int, callbacks: list[Callback], *, rate: float, seconds: float, concurrency: int
) -> Results:
    """Send `callbacks` on `concurrency` connections, `rate` per second (0: closed loop)."""
    results = Results()
    next_index = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < len(callbacks):
                index = next_index
                next_index += 1
                if time.perf_counter() > deadline:
                    return  # behind schedule: what was not sent in time is not sent
                if rate > 0:
                    due = started + index / rate
                    if due > deadline:
                        return
                    if (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                callback = callbacks[index]
                sent = time.perf_counter()
                writer.write(callback.request)
                try:
                    status = await _answer(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    results.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                results.latencies_ms.append((time.perf_counter() - sent) * 1000)
                results.statuses[status] = results.statuses.get(status, 0) + 1
                if status == 200:
                    results.accepted.append(callback.event_id)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    results.elapsed = time.perf_counter() - started
    return results


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) process `pid` has used; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the check ----------------------------------------------------------------------------------


def _inbox(store_file: Path) -> tuple[set[str], int]:
    """(event ids in the inbox, events still pending)."""
    with contextlib.closing(sqlite3.connect(store_file, timeout=30)) as db:
        ids = {row[0] for row in db.execute("SELECT event_id FROM inbox")}
        pending = db.execute("SELECT count(*) FROM inbox WHERE completed_at IS NULL").fetchone()[0]
    return ids, int(pending)


def _wait_drained(store_file: Path, timeout: float) -> float | None:
    """Seconds until no inbox event is pending, or None after `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if _inbox(store_file)[1] == 0:
            return time.perf_counter() - started
        time.sleep(0.2)
    return None


def main() -> None:
    """Run the benchmark and print (and write) its figures."""
    args = options()
    count = int(args.rate * args.seconds) + 1 if args.rate > 0 else args.max_callbacks
    with deployment(keep=args.keep) as target:
        print(f"signing {count:,} callbacks ...", file=sys.stderr)
        callbacks = sign_callbacks(target, count, args.referrals)
        print(f"sending for {args.seconds:g} s ...", file=sys.stderr)
        cpu_before = cpu_seconds(target.serve_pid)
        results = asyncio.run(
            send(
                target.port,
                callbacks,
                rate=args.rate,
                seconds=args.seconds,
                concurrency=args.concurrency,
            )
        )
        cpu_after = cpu_seconds(target.serve_pid)
        drained = _wait_drained(target.store_file, args.drain_timeout)
        recorded, pending = _inbox(target.store_file)
    serve_cpu_ms = (
        (cpu_after - cpu_before) * 1000 / len(results.accepted)
        if cpu_before is not None and cpu_after is not None and results.accepted
        else None
    )
    lost = sum(1 for event_id in results.accepted if event_id not in recorded)
    sent = len(results.latencies_ms) + results.errors
    accepted_rate = len(results.accepted) / results.elapsed if results.elapsed else 0.0
    p99 = benchkit.percentile(results.latencies_ms, 99)
    report = benchkit.Report(
        title="Webhook intake: signed callbacks into cosell serve over loopback",
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        columns=[
            "offered/s",
            "sent",
            "accepted",
            "other answers",
            "lost",
            "accepted/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "drained s",
            "pending",
            "serve CPU ms/callback",
        ],
    )
    report.rows.append(
        {
            "offered/s": "max" if args.rate == 0 else args.rate,
            "sent": sent,
            "accepted": len(results.accepted),
            "other answers": sent - len(results.accepted),
            "lost": lost,
            "accepted/s": accepted_rate,
            "p50 ms": benchkit.percentile(results.latencies_ms, 50),
            "p99 ms": p99,
            "max ms": max(results.latencies_ms, default=float("nan")),
            "drained s": drained,
            "pending": pending,
            "serve CPU ms/callback": serve_cpu_ms,
            "statuses": {str(k): v for k, v in sorted(results.statuses.items())},
            "connection errors": results.errors,
        }
    )
    report.notes.extend(_verdicts(accepted_rate, p99, lost, results))
    if serve_cpu_ms:
        report.notes.append(
            f"cosell serve used {serve_cpu_ms:.2f} ms of CPU per accepted callback: at most "
            f"~{1000 / serve_cpu_ms:,.0f} callbacks/s on one fully available core"
        )
    report.print(Console(width=200))
    report.write_json(args.json)


def _verdicts(rate: float, p99: float, lost: int, results: Results) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    notes = [
        f"target >= {TARGET_RATE:,.0f} accepted/s: {verdict(rate >= TARGET_RATE)} ({rate:,.0f}/s)",
        f"target p99 < {TARGET_P99_MS:g} ms: {verdict(p99 < TARGET_P99_MS)} ({p99:,.1f} ms)",
        f"nothing lost: {verdict(lost == 0)} ({lost} accepted callbacks missing from the inbox)",
    ]
    others = {k: v for k, v in results.statuses.items() if k != 200}
    if others or results.errors:
        notes.append(f"answers other than 200: {others}; connection errors: {results.errors}")
    return notes


if __name__ == "__main__":
    main()
