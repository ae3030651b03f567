"""Fan-out benchmark: Cluster.list() over 16 and 100 nodes vs CacheClient.list() on one node.

Every node of a local reference-server cluster (keystone identity mode, so real token requests happen) answers
each request after an added latency of 100 ms, standing in for a WAN between an operator and a DCN site. The
cluster runs as its own process (``glancecache-server --nodes N``), as remote nodes would: in this process its
16 servers would compete with the client for the GIL and count against the client's time. Token requests are
counted on the client side, where keystoneauth1 asks for each one. Each repetition starts cold: a new
keystoneauth1 session (so a new token) and new clients (so discovery again).
The nodes are spread over a few server processes (``--server-processes``, default 4) sharing one data directory,
so one identity database (one token is good on every node, as with one Keystone). Real nodes are separate
machines; one process hosting all 100 would answer their 100 simultaneous listings one at a time under its GIL
(about 1.3-1.5 ms of server CPU each, 0.15 s in all), measuring the test server rather than the client's fan-out. On a
2-core machine more processes than cores add little.
The goals: 16 nodes (issue: foundation) and 100 nodes (issue 11) within 1.3x the time of one node, with exactly
one token request, and 100 nodes under 80 MiB peak RSS. Each scenario runs in a child process of its own, so its
peak RSS (ru_maxrss from os.wait4) is that of the client alone.
A plain loop over the nodes, one after another (what a shell loop over `glance --os-image-url` does), is the
baseline.
With ``--stub-nodes`` the same runs are also made against stub nodes: asyncio listeners that answer each request
with canned bytes (a token and an empty listing, recorded from a reference node) after the same latency, at
almost no CPU. Their rows show what the client alone costs, with the servers' CPU taken off the two cores.

    .venv/bin/python benchmarks/bench_fanout.py [--nodes 100] [--no-loop] [--latency 0.1] [--repeat 5]
        [--server-processes 4] [--stub-nodes]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from tabulate import tabulate

from glancecache_client import CacheClient, Cluster


@contextlib.contextmanager
def server_processes(nodes: int, latency: float, processes: int, stub_answers: str = "") -> Iterator[list[str]]:
    """A keystone-mode reference cluster of ``nodes`` nodes in ``processes`` processes sharing one data directory
    (or, given ``stub_answers``, stub nodes replaying that file's answers); yields the node URLs, taking one from
    each process in turn (so the first 16 span every process)."""
    script = Path(sys.executable).parent / "glancecache-server"
    processes = max(1, min(processes, nodes))
    with tempfile.TemporaryDirectory() as data_dir, contextlib.ExitStack() as stack:
        per_process = []
        for index in range(processes):
            count = nodes // processes + (1 if index < nodes % processes else 0)
            argv = [str(script), "--nodes", str(count), "--port", "0", "--auth", "keystone", "--data-dir", data_dir]
            argv += ["--added-latency", str(latency), "--log-level", "warning"]
            if stub_answers:
                argv = [sys.executable, __file__, "--stub-serve", stub_answers, "--latency", str(latency), str(count)]
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                       start_new_session=True)  # fmt: skip
            stack.callback(_stop, process)
            assert process.stdout is not None
            urls = [process.stdout.readline().strip() for _ in range(count)]
            if not all(url.startswith("http") for url in urls):
                raise SystemExit(f"glancecache-server did not start (exit {process.poll()})")
            per_process.append(urls)
        yield [url for column in itertools.zip_longest(*per_process) for url in column if url is not None]


def record_answers(path: str) -> None:
    """Write to ``path`` the raw answers a reference node gives to a token request and to GET /v2/cache (an empty
    cache), for stub nodes to replay."""
    with server_processes(1, 0.0, 1) as (url,), httpx.Client() as http:
        token = http.post(f"{url}/identity/v3/auth/tokens", json=_token_body())
        listing = http.get(f"{url}/v2/cache", headers={"X-Auth-Token": token.headers["x-subject-token"]})
    answers = {"token": _raw(token), "listing": _raw(listing)}
    Path(path).write_text(json.dumps(answers))


def _token_body() -> dict[str, Any]:
    user = {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}
    scope = {"project": {"name": "admin", "domain": {"name": "Default"}}}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}}


def _raw(response: httpx.Response) -> str:
    """The response as bytes on the wire (latin-1 text), its length framing its body."""
    assert response.status_code < 300, response.text
    headers = [(k, v) for k, v in response.headers.items() if k not in ("content-length", "transfer-encoding", "date")]
    head = f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + f"Content-Length: {len(response.content)}\r\n\r\n"
    return head + response.content.decode("latin-1")


def serve_stubs(answers_path: str, count: int, latency: float) -> None:
    """Stub nodes (this process, one asyncio loop): each request gets the recorded token answer (a POST to
    .../auth/tokens) or listing (anything else), ``latency`` seconds after its head and body are in."""
    answers = json.loads(Path(answers_path).read_text())
    token, listing = answers["token"].encode("latin-1"), answers["listing"].encode("latin-1")

    class Stub(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) < length:
                    return
                self.buffer = rest[length:]
                answer = token if b"/auth/tokens" in head.split(b"\r\n", 1)[0] else listing
                asyncio.get_running_loop().call_later(latency, self.transport.write, answer)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(count):
            server = await loop.create_server(Stub, "127.0.0.1", 0)
            print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


class CountingPassword(v3.Password):  # type: ignore[misc]
    """keystoneauth1's password plugin, counting the token requests it makes."""

    requests = 0

    def get_auth_ref(self, session: Any, **kwargs: Any) -> Any:
        CountingPassword.requests += 1
        return super().get_auth_ref(session, **kwargs)


def measure_in_this_process(urls: list[str], repeat: int, mode: str) -> dict[str, float]:
    """Median seconds and token requests of a cold ``list()`` (``one``: CacheClient on urls[0]; ``fan``: Cluster;
    ``loop``: one CacheClient after another), run in a child so its peak RSS is its own."""
    identity_url = f"{urls[0]}/identity/v3"

    def new_session() -> ks_session.Session:
        auth = CountingPassword(
            auth_url=identity_url,
            username="admin",
            password="admin",
            project_name="admin",
            user_domain_name="Default",
            project_domain_name="Default",
        )
        return ks_session.Session(auth=auth)

    def one_node() -> None:
        with CacheClient(urls[0], session=new_session()) as client:
            client.list()

    def fan_out() -> None:
        with Cluster(urls, session=new_session()) as nodes:
            result = nodes.list()
            assert result.ok, result.errors

    def sequential() -> None:
        session = new_session()
        for url in urls:
            with CacheClient(url, session=session) as client:
                client.list()

    run: Callable[[], None] = {"one": one_node, "fan": fan_out, "loop": sequential}[mode]
    times, tokens = [], []
    run()  # warm-up: imports, connection set-up in the server
    for _ in range(repeat):
        issued = CountingPassword.requests
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
        tokens.append(CountingPassword.requests - issued)
    return {"seconds": statistics.median(times), "tokens": statistics.median(tokens)}


def in_child(urls: list[str], repeat: int, mode: str) -> tuple[float, float, float]:
    """(seconds, token requests, peak RSS MiB) of one scenario run in a child process."""
    argv = [sys.executable, __file__, "--child", mode, "--repeat", str(repeat), *urls]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{mode} over {len(urls)} nodes failed (exit {child.returncode})")
    figures = json.loads(out)
    return figures["seconds"], figures["tokens"], usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="the largest fan-out (default 100; 16 is shown too)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every request (default 0.1)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server-processes", type=int, default=4, metavar="N",
                        help="server processes hosting the nodes (default 4; one alone serialises them)")  # fmt: skip
    parser.add_argument("--no-loop", action="store_true", help="skip the sequential baseline (slow at 100 nodes)")
    parser.add_argument("--stub-nodes", action="store_true",
                        help="also measure against stub nodes answering canned bytes (the client's own cost)")
    parser.add_argument("--child", choices=["one", "fan", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--stub-serve", metavar="ANSWERS", help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_in_this_process(args.urls, args.repeat, args.child)))
        return
    if args.stub_serve:  # a stub-node process: its one argument is how many nodes
        serve_stubs(args.stub_serve, int(args.urls[0]), args.latency)
        return

    counts = sorted({16, args.nodes} if args.nodes > 16 else {args.nodes})
    with server_processes(max(counts), args.latency, args.server_processes) as urls:
        single, single_tokens, single_rss = in_child(urls[:1], args.repeat, "one")
        rows = [["CacheClient.list(), 1 node", f"{single:.3f}", "1.00x", f"{single_tokens:g}", f"{single_rss:.0f}", ""]]
        for count in counts:
            fanned, tokens, rss = in_child(urls[:count], args.repeat, "fan")
            met = fanned / single <= 1.3 and tokens == 1 and (count < 100 or rss < 80)
            goal = "<= 1.30x, 1 token" + (", < 80 MiB" if count >= 100 else "")
            rows.append([f"Cluster.list(), {count} nodes", f"{fanned:.3f}", f"{fanned / single:.2f}x",
                         f"{tokens:g}", f"{rss:.0f}", f"{goal}: {'MET' if met else 'MISSED'}"])  # fmt: skip
        if not args.no_loop:
            count = counts[0]
            looped, tokens, rss = in_child(urls[:count], max(1, args.repeat // 2), "loop")
            rows.append([f"sequential loop, {count} nodes (baseline)", f"{looped:.3f}", f"{looped / single:.2f}x",
                         f"{tokens:g}", f"{rss:.0f}", ""])  # fmt: skip
    if args.stub_nodes:
        with tempfile.TemporaryDirectory() as scratch:
            answers = str(Path(scratch) / "answers.json")
            record_answers(answers)
            with server_processes(max(counts), args.latency, args.server_processes, answers) as urls:
                stub_single, tokens, rss = in_child(urls[:1], args.repeat, "one")
                alone = "(the client alone)"
                rows.append(["CacheClient.list(), 1 stub node", f"{stub_single:.3f}", "1.00x", f"{tokens:g}",
                             f"{rss:.0f}", alone])  # fmt: skip
                fanned, tokens, rss = in_child(urls, args.repeat, "fan")
                rows.append([f"Cluster.list(), {len(urls)} stub nodes", f"{fanned:.3f}",
                             f"{fanned / stub_single:.2f}x", f"{tokens:g}", f"{rss:.0f}", alone])  # fmt: skip
    print(f"cold list() with {args.latency * 1000:.0f} ms added latency per request, median of {args.repeat};"
          f" nodes in {min(args.server_processes, max(counts))} server processes;"
          " each scenario in its own process (peak RSS is that process's)")  # fmt: skip
    print(tabulate(rows, headers=["scenario", "seconds", "vs 1 node", "token requests", "peak RSS MiB", "goal"]))


if __name__ == "__main__":
    main()
