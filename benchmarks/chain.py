"""Calls/s through the whole chain (online proxy -> edge -> mediation -> gateway), media bypassed.

Run: ``.venv/bin/python benchmarks/chain.py [--quick] [--seconds 20] [--repeats 2]``

Load: SIPp uac -> online proxy (UDP) -> edge -> mediation -> SIPp uas (the gateway, UDP), both
SIPp with ``-buff_size 4194304``, on 127.0.0.1. The uac is the transactional scenario of
``../shared/peers/scenarios/uac_txn.xml`` made fit for a record-routing, authenticating proxy:

- ``--auth digest`` (the product path, DUT ``chain``): the From is the lab user alice; the proxy
  answers the first INVITE with 407, SIPp ACKs it (same branch, ``ack_txn``) and sends the
  INVITE again with ``[authentication username=alice password=hybridvoice]`` (MD5 digest,
  qop=auth). One call = 2 INVITE transactions at the proxy.
- ``--auth trusted`` (DUT ``chain_trusted``): the settings name SIPp's network in
  ``[Online] TrustedPeers`` (a peer that authenticates its own users, such as an SBC): the
  proxy does not challenge it, and the uac sends one INVITE.

``--auth both`` (default) measures both. SIPp 3.6.1 answers only MD5 challenges: the lab
settings challenge with MD5 only (``[Online] DigestAlgorithms``); the uac passes
``-auth_uri`` so that the digest uri is the Request-URI (the registrar checks it). In both the
uac keeps the route set of the 200 (``rrs="true"``) and sends ACK and BYE to the
Contact with the Route headers, so every in-dialog request crosses proxy and edge too.

The chain is :class:`hybridvoice.app.Lab` (the deployment of ``hybridvoice up``: online
service with registrar, proxy and API; one appliance with edge and mediation; roles on TCP
between them as in the lab settings, which in one process means in-process pipes,
``hybridvoice.net.pipe``) in its own process (``chain.py serve``, uvloop), with
``lab_gateway=False``, the SIPp uas as Gateway1 (UDP, MediaBypass true), the tenant's media
bypass enabled for 127.0.0.0/8 and the call limit lifted. It prints ``ready`` once the
appliance is registered and replicated and runs until SIGTERM. Each run starts a fresh chain
process (stopped by PID); its start-up time (process start -> ``ready``) is recorded.

A rate is *clean* when every call succeeded, neither SIPp retransmitted anything for the
whole run and SIPp reached at least 95% of the asked rate (a saturated DUT slows it down).
Search: rates in order with short runs (``--search-seconds``) until the first that is not
clean; then the highest clean rate is confirmed with a full ``--seconds`` run (stepping
down through the lower rates when the confirmation is not clean). CPU per call is utime+stime
of the DUT process and its descendants from ``/proc/PID/stat`` over the run divided by the
successful calls. The same is done in the same run, alternating, for (a) the mediation role
alone (``benchmarks/b2bua.py``'s ``hybridvoice mediation serve --no-relay``) and
(b) sippy's B2BUA (``../shared/peers/`` recipe), ``--repeats`` times. The table gives the best
clean figures and the spread over the repeats, the ratios chain/mediation and chain/sippy,
the Lab start-up time and the replication latency (``benchmarks/replication.py``'s
measurement, in this process).

Goals: chain clean rate >= 2x sippy's; chain CPU per call <= 1.2 ms.

``--split`` runs the online service and the appliance in two processes (the appliance a
child of the online one, so that the CPU figure counts both), as in production: online <->
edge on loopback TCP, edge <-> mediation piped inside the appliance; the DUT names get
``_split`` and each row also gives ``online_cpu_ms_per_call`` and
``appliance_cpu_ms_per_call`` (each process from ready to stop).

``--wire`` runs the chain as ``hybridvoice up --wire``: every hop between the roles on loopback
TCP sockets (serialised, sent, framed and parsed again), as between hosts; the DUT names get
``_wire``. It shows what the pipes save, and what roles on separate hosts would cost.

``--profile`` adds one run of the chain under cProfile at ``--profile-rate`` and prints the
top functions (cProfile slows the chain about 2x; use it for where the time goes, not for
figures). The machine is shared with other users: figures are noisy, hence the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import LoadResult, Proc, free_port, sipp_load

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
DOMAIN = "contoso.example"
USER, PASSWORD = "alice", "hybridvoice"
NUMBER = "+15550199"  # nobody's line: a PSTN call for alice's site
GOAL_VS_SIPPY = 2.0
GOAL_CPU_MS = 1.2

_SDP = """\
      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
"""


def _invite(cseq: int, txn: str, auth: bool) -> str:
    credentials = f"      [authentication username={USER} password={PASSWORD}]\n" if auth else ""
    return f"""  <send retrans="500" start_txn="{txn}">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Alice" <sip:{USER}@{DOMAIN}>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:{USER}@[local_ip]:[local_port]>
{credentials}      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{_SDP}
    ]]>
  </send>
"""


def _in_dialog(method: str, cseq: int, extra: str) -> str:
    return f"""  <send{extra}>
    <![CDATA[

      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "Alice" <sip:{USER}@{DOMAIN}>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:{USER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def uac_scenario(auth: bool) -> str:
    """The transactional uac (``uac_txn.xml``) as alice, through a record-routing proxy; with
    ``auth`` the first INVITE is challenged (407), ACKed and sent again with credentials."""
    parts = [
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n',
        f'<scenario name="uac_txn through the hybridvoice chain (auth={auth})">\n',
    ]
    cseq = 1
    if auth:
        parts.append(_invite(cseq, "auth", auth=False))
        parts.append('  <recv response="100" optional="true" response_txn="auth"/>\n')
        parts.append('  <recv response="407" auth="true" response_txn="auth"/>\n')
        # the ACK of the 407 has the INVITE's branch (RFC 3261 §17.1.1.3): message 0 of 3 back
        parts.append(f"""  <send ack_txn="auth">
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: "Alice" <sip:{USER}@{DOMAIN}>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
""")  # fmt: skip
        cseq += 1
    parts.append(_invite(cseq, "invite", auth=auth))
    parts.append('  <recv response="100" optional="true" response_txn="invite"/>\n')
    parts.append('  <recv response="180" optional="true" response_txn="invite"/>\n')
    parts.append('  <recv response="183" optional="true" response_txn="invite"/>\n')
    parts.append('  <recv response="200" rtd="true" rrs="true" response_txn="invite"/>\n')
    parts.append(_in_dialog("ACK", cseq, ' ack_txn="invite"'))
    parts.append("  <pause/>\n")
    parts.append(_in_dialog("BYE", cseq + 1, ' retrans="500" start_txn="bye"'))
    parts.append('  <recv response="200" crlf="true" response_txn="bye"/>\n')
    parts.append('  <ResponseTimeRepartition value="10, 20, 30, 40, 50, 100, 150, 200"/>\n')
    parts.append('  <CallLengthRepartition value="10, 50, 100, 500, 1000, 5000, 10000"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


# --- the chain process ----------------------------------------------------------------------


def chain_settings(gateway_port: int, trust: bool = False) -> dict[str, Any]:
    """The lab settings (``hybridvoice init``) on free ports, the SIPp uas as Gateway1; with
    ``trust``, SIPp's network (loopback) in ``[Online] TrustedPeers``. As the raw mapping
    (``parse_settings`` takes it), so that two processes can share it as JSON."""
    from hybridvoice.cms.template import lab_settings  # noqa: PLC0415

    raw = lab_settings(domain=DOMAIN).model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["Common"]["MaxConcurrentCalls"] = 1_000_000
    raw["EdgeServer"].update(InternalPort=free_port(), ExternalSIPPort=free_port())
    raw["MediationServer"].update(
        TCPPort=free_port(), UDPPort=free_port(), InternalPort=free_port(),
        BypassServicePort=free_port(), TLSPort=False,
    )  # fmt: skip
    raw["Online"].update(ServiceURL=f"http://127.0.0.1:{free_port()}", SIPPort=free_port())
    if trust:
        raw["Online"]["TrustedPeers"] = "127.0.0.0/8"
    raw["Management"].update(Port=free_port())
    gateway = raw["Gateways"][0]
    gateway.update(Port=gateway_port, Protocol="UDP", MediaBypass=True, SendSipOptions=False)
    return raw


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _appliance_process(args: argparse.Namespace, online_version: int) -> Proc:
    """``--split``: the appliance in a child process of the online one (so that the load side
    counts both), ready once registered and replicated."""
    out = Path(args.state) / "appliance.out"
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "serve", "--part", "appliance",
        "--settings", args.settings, "--state", str(Path(args.state) / "appliance"),
        "--gateway-port", str(args.gateway_port), "--gc-interval", str(args.gc_interval),
        "--online-version", str(online_version),
    ]  # fmt: skip
    child = Proc(cmd, out)
    deadline = time.monotonic() + 30
    while "ready" not in out.read_text(errors="replace"):
        if time.monotonic() > deadline or not child.alive():
            child.stop()
            raise RuntimeError(f"the appliance did not start: {out.read_text()[-1500:]}")
        await asyncio.sleep(0.01)
    return child


async def _serve(args: argparse.Namespace) -> None:
    from hybridvoice.app import Lab  # noqa: PLC0415
    from hybridvoice.net.loop import tune_gc  # noqa: PLC0415
    from hybridvoice.online.models import NetworkConfig  # noqa: PLC0415

    class BypassLab(Lab):
        def _provision(self, store: object) -> None:
            super()._provision(store)  # type: ignore[arg-type]
            store.set_network_config(  # type: ignore[attr-defined]
                NetworkConfig(media_bypass_enabled=True, internal_subnets=("127.0.0.0/8",))
            )

    from hybridvoice.cms.settings import parse_settings  # noqa: PLC0415

    if args.settings is None:
        raw = chain_settings(args.gateway_port, trust=args.trust)
    else:
        raw = json.loads(Path(args.settings).read_text())
    lab = BypassLab(parse_settings(raw), Path(args.state), lab_gateway=False, wire=args.wire)
    child: Proc | None = None
    if args.part == "all":
        await lab.start()
    elif args.part == "online":
        await lab.start_online()
        assert lab.online is not None
        child = await _appliance_process(args, lab.online.store.version)
    else:
        await lab.start_appliance()
        appliance = lab.appliance
        assert appliance is not None and appliance.link and appliance.replicator
        async with asyncio.timeout(20):
            while not appliance.link.registered:
                await asyncio.sleep(0.02)
        await appliance.replicator.synced(args.online_version, 20)
    # SIPp 3.6.1 answers only MD5 challenges: the lab settings challenge with MD5 only
    # ([Online] DigestAlgorithms), as `hybridvoice up` does
    collector = tune_gc(args.gc_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cpu_ready = _cpu_s()
    if lab.online is not None:
        host, port = lab.online.sip_address("UDP")
        print(f"ready proxy={host}:{port} in {time.monotonic() - args.t0:.3f} s", flush=True)
    else:
        print("ready", flush=True)
    await stop.wait()
    print(f"cpu part={args.part} s={_cpu_s() - cpu_ready:.4f}", flush=True)
    if child is not None:
        child.stop(grace=15.0)
    if collector is not None:
        collector.cancel()
    await lab.stop()


def serve(args: argparse.Namespace) -> int:
    from hybridvoice.net.loop import run  # noqa: PLC0415

    if args.profile is None:
        run(_serve(args))
        return 0
    import cProfile  # noqa: PLC0415

    profiler = cProfile.Profile()
    profiler.runcall(run, _serve(args))
    profiler.dump_stats(args.profile)
    return 0


# --- the load side --------------------------------------------------------------------------


@dataclass
class Chain:
    """One chain process (``chain.py serve``) toward the gateway ``uas`` port."""

    uas: int
    workdir: Path
    trust: bool
    wire: bool
    gc_interval: float
    split: bool = False
    profile: Path | None = None
    proc: Proc | None = None
    target: str = ""
    startup_s: float = 0.0

    def __enter__(self) -> Proc:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        args = [
            str(VENV / "python"), str(Path(__file__).resolve()), "serve",
            "--gateway-port", str(self.uas), "--state", str(w / "state"),
            "--gc-interval", str(self.gc_interval),
        ]  # fmt: skip
        if self.trust:
            args.append("--trust")
        if self.wire:
            args.append("--wire")
        if self.split:
            settings = w / "settings.json"
            (w / "state").mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps(chain_settings(self.uas, trust=self.trust)))
            args += ["--part", "online", "--settings", str(settings)]
        if self.profile is not None:
            args += ["--profile", str(self.profile)]
        t0 = time.monotonic()
        self.proc = Proc(args, w / "chain.out")
        deadline = t0 + 30
        text = ""
        while time.monotonic() < deadline and self.proc.alive():
            text = (w / "chain.out").read_text(errors="replace")
            if "ready proxy=" in text:
                break
            time.sleep(0.005)
        self.startup_s = time.monotonic() - t0
        if "ready proxy=" not in text:
            self.proc.stop()
            raise RuntimeError(f"the chain did not start: {text[-1500:]}")
        self.target = text.split("ready proxy=", 1)[1].split()[0]
        return self.proc

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.stop(grace=15.0)

    def part_cpu_s(self) -> dict[str, float]:
        """CPU seconds of each process from ready to stop (``cpu part=... s=...`` lines)."""
        found: dict[str, float] = {}
        for out in (self.workdir / "chain.out", self.workdir / "state" / "appliance.out"):
            if out.exists():
                for line in out.read_text(errors="replace").splitlines():
                    if line.startswith("cpu part="):
                        part, _, seconds = line[len("cpu part=") :].partition(" s=")
                        found[part] = float(seconds)
        return found


@dataclass
class Run:
    kind: str
    result: LoadResult
    startup_s: float | None = None


@dataclass
class Ramp:
    kind: str
    runs: list[Run] = field(default_factory=list)
    best: Run | None = None  # the confirmed (full-length) highest clean rate


def run_chain(
    rate: int, seconds: float, out: Path, a: argparse.Namespace, trust: bool, **kw: object
) -> Run:
    uas = free_port()
    label = "chain_trusted" if trust else "chain"
    label += ("_wire" if a.wire else "") + ("_split" if a.split else "")
    workdir = out / f"{label}_r{rate}_{int(time.time() * 1000)}"
    chain = Chain(uas, workdir, trust, a.wire, a.gc_interval, a.split, **kw)  # type: ignore[arg-type]
    sf = workdir / "uac.xml"
    workdir.mkdir(parents=True, exist_ok=True)
    sf.write_text(uac_scenario(auth=not trust))
    with chain as proc:
        result = sipp_load(
            label=label, target=chain.target, rate=rate, seconds=seconds, uas_port=uas,
            workdir=workdir, uac_sf=sf, dut_pid=proc.pid, service=NUMBER,
            extra_uac=[] if trust else ["-auth_uri", f"{NUMBER}@{chain.target}"],
        )  # fmt: skip
    row = {**result.as_dict(), "startup_s": round(chain.startup_s, 3), "seconds": seconds}
    if result.success:  # CPU per call of each process, ready -> stop (idle tail included)
        for part, cpu_s in chain.part_cpu_s().items():
            row[f"{part}_cpu_ms_per_call"] = round(1000 * cpu_s / result.success, 3)
    (workdir / "result.json").write_text(json.dumps(row))
    print(json.dumps(row), flush=True)
    return Run(label, result, chain.startup_s)


def run_peer(kind: str, rate: int, seconds: float, out: Path) -> Run:
    import b2bua  # noqa: PLC0415

    result = b2bua.run_one(kind, rate, seconds, out)
    return Run("mediation" if kind == "hybridvoice" else kind, result)


def one(kind: str, rate: int, seconds: float, out: Path, a: argparse.Namespace) -> Run:
    if kind in ("chain", "chain_trusted"):
        return run_chain(rate, seconds, out, a, kind == "chain_trusted")
    return run_peer("hybridvoice" if kind == "mediation" else kind, rate, seconds, out)


#: a run whose calls were created at less than this share of the asked rate is not clean
MIN_ACHIEVED = 0.95


def is_clean(result: LoadResult) -> bool:
    """0 failed, 0 retransmissions on either SIPp, every call done, and the rate reached
    (SIPp's CallRate(C) >= MIN_ACHIEVED x the asked rate: a saturated DUT slows SIPp down)."""
    return result.clean and result.achieved_cps >= MIN_ACHIEVED * result.rate


def ramp(kind: str, rates: list[int], a: argparse.Namespace) -> Ramp:
    """Short runs up the rates until the first unclean one; then confirm the highest clean
    rate with a full-length run, stepping down while the confirmation is not clean."""
    r = Ramp(kind)
    clean: list[int] = []
    for rate in rates:
        run = one(kind, rate, a.search_seconds, a.out, a)
        r.runs.append(run)
        if not is_clean(run.result):
            break
        clean.append(rate)
    if a.search_seconds == a.seconds:
        best = [x for x in r.runs if is_clean(x.result)]
        r.best = best[-1] if best else None
        return r
    for rate in reversed(clean):
        run = one(kind, rate, a.seconds, a.out, a)
        r.runs.append(run)
        if is_clean(run.result):
            r.best = run
            break
    return r


def replication_latency(replicas: int, changes: int) -> dict[str, float]:
    import replication  # noqa: PLC0415

    from hybridvoice.net.loop import run  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="hv-bench-repl-") as tmp:
        lat = run(replication.run(replicas, changes, 25.0, 0.02, Path(tmp)))
    return {
        "p50_ms": statistics.median(lat) * 1e3,
        "p95_ms": replication._pct(lat, 0.95) * 1e3,
        "max_ms": max(lat) * 1e3,
    }


IDLE_S = 5.0


def chain_idle_cpu(a: argparse.Namespace) -> float:
    """CPU % of a ready chain process without calls (heartbeats, polls, timers)."""
    from _harness import TCK, descendants, tree_ticks  # noqa: PLC0415

    workdir = a.out / f"chain_idle_{int(time.time() * 1000)}"
    chain = Chain(free_port(), workdir, False, a.wire, a.gc_interval, a.split)
    with chain as proc:
        time.sleep(1.0)
        pids = descendants(proc.pid)
        t0, c0 = time.monotonic(), tree_ticks(pids)
        time.sleep(IDLE_S)
        return 100.0 * (tree_ticks(pids) - c0) / TCK / (time.monotonic() - t0)


def profile_chain(rate: int, seconds: float, a: argparse.Namespace, top: int) -> None:
    import pstats  # noqa: PLC0415

    stats_file = a.out / f"chain_profile_r{rate}.pstats"
    run = run_chain(rate, seconds, a.out, a, a.auth == "trusted", profile=stats_file)
    print(f"\nprofile of the chain at {rate} calls/s for {seconds:g} s "
          f"(clean={is_clean(run.result)}; cProfile inflates CPU): {stats_file}")  # fmt: skip
    stats = pstats.Stats(str(stats_file))
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- report ---------------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:g}"
    return f"{min(values):g}..{max(values):g}"


def summarise(ramps: dict[str, list[Ramp]]) -> dict[str, dict[str, object]]:
    """Per DUT: the highest confirmed clean rate over the repeats (a repeat without one counts
    0 in the spread), the lowest CPU per call at that rate, and the spread of CPU per call
    over every repeat's confirmed rate."""
    table: dict[str, dict[str, object]] = {}
    for kind, reps in ramps.items():
        bests = [r.best for r in reps if r.best is not None]
        rates = [float(r.best.result.rate) if r.best else 0.0 for r in reps]
        cpu_all = [b.result.dut_cpu_ms_per_call for b in bests if b.result.dut_cpu_ms_per_call]
        row: dict[str, object] = {
            "max_clean_cps": 0,
            "max_clean_spread": _spread(rates),
            "cpu_ms_at_max": None,
            "cpu_ms_spread": _spread([round(c, 3) for c in cpu_all]),
            "dut_cpu_pct_at_max": None,
            "repeats": len(reps),
            "confirmed": len(bests),
        }
        if bests:
            top = max(b.result.rate for b in bests)
            at_top = [b.result for b in bests if b.result.rate == top]
            cpus = [x.dut_cpu_ms_per_call for x in at_top if x.dut_cpu_ms_per_call]
            row.update(
                max_clean_cps=top,
                cpu_ms_at_max=min(cpus) if cpus else None,
                dut_cpu_pct_at_max=at_top[0].dut_cpu_pct,
            )
        table[kind] = row
    return table


def _ratio(x: object, y: object) -> str:
    if not isinstance(x, int | float) or not isinstance(y, int | float) or not x or not y:
        return "-"
    return f"{x / y:.2f}x"


def print_report(
    table: dict[str, dict[str, object]],
    startups: list[float],
    repl: dict[str, float] | None,
    a: argparse.Namespace,
) -> None:
    print()
    hops = "loopback TCP sockets (--wire)" if a.wire else "in-process pipes"
    if a.split:
        hops += "; online service and appliance in two processes (--split)"
    print(f"chain = SIPp uac -> online proxy -> edge -> mediation -> SIPp uas, media bypassed, "
          f"auth={a.auth}, hops between roles: {hops}; {a.seconds:g} s confirmation runs, "
          f"best of {a.repeats} (a shared 2-core machine: others may run too)")  # fmt: skip
    print(f"{'DUT':<14} {'max clean cps':>13} {'spread':>11} {'ms CPU/call':>11} "
          f"{'spread':>13} {'DUT CPU %':>9}")  # fmt: skip
    for kind, row in table.items():
        cpu = row["cpu_ms_at_max"]
        print(f"{kind:<14} {row['max_clean_cps']:>13} {row['max_clean_spread']:>11} "
              f"{cpu if cpu is not None else '-':>11} {row['cpu_ms_spread']:>13} "
              f"{row['dut_cpu_pct_at_max'] or '-':>9}")  # fmt: skip
    med, sippy = table.get("mediation", {}), table.get("sippy", {})
    for name in ("chain", "chain_trusted"):
        chain = table.get(name)
        if chain is None:
            continue
        print()
        rate_ratio = _ratio(chain.get("max_clean_cps"), med.get("max_clean_cps"))
        cpu_ratio = _ratio(chain.get("cpu_ms_at_max"), med.get("cpu_ms_at_max"))
        print(f"{name} vs mediation alone: clean rate {rate_ratio}, CPU per call {cpu_ratio}")
        vs = _ratio(chain.get("max_clean_cps"), sippy.get("max_clean_cps"))
        print(f"{name} clean rate vs sippy's B2BUA: {vs} (goal >= {GOAL_VS_SIPPY:g}x)")
        cpu = chain.get("cpu_ms_at_max")
        print(f"{name} CPU per call: {cpu if cpu is not None else '-'} ms "
              f"(goal <= {GOAL_CPU_MS} ms)")  # fmt: skip
    if startups:
        print(f"Lab start-up (process start -> ready): median {statistics.median(startups):.2f} s, "
              f"{min(startups):.2f}..{max(startups):.2f} s over {len(startups)} starts "
              f"(goal <= 3 s)")  # fmt: skip
    if repl is not None:
        print(f"replication latency (write -> every replica committed): "
              f"p50 {repl['p50_ms']:.1f} ms, p95 {repl['p95_ms']:.1f} ms, "
              f"max {repl['max_ms']:.1f} ms (goal <= 1 s)")  # fmt: skip


def _rates(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        s = argparse.ArgumentParser(prog="chain.py serve", description="the chain process (Lab)")
        s.add_argument("--gateway-port", type=int, required=True, help="the SIPp uas (UDP)")
        s.add_argument("--state", required=True, help="state directory (fresh)")
        s.add_argument("--trust", action="store_true", help="SIPp's network in TrustedPeers")
        s.add_argument("--wire", action="store_true", help="roles on sockets, not pipes")
        s.add_argument("--part", choices=("all", "online", "appliance"), default="all",
                       help="all: one process (hybridvoice up); online: the online service, "
                            "which starts the appliance part as its child")  # fmt: skip
        s.add_argument("--settings", default=None, help="raw settings (JSON) of the parts")
        s.add_argument("--online-version", type=int, default=0, help="appliance part: the "
                       "tenant version to have replicated before ready")  # fmt: skip
        s.add_argument("--gc-interval", type=float, default=600.0)
        s.add_argument("--profile", type=Path, default=None, help="write cProfile stats here")
        args = s.parse_args(argv[1:])
        args.t0 = t0
        return serve(args)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="length of a confirmation run")
    p.add_argument("--search-seconds", type=float, default=6.0, help="length of a search run")
    p.add_argument("--repeats", type=int, default=2, help="ramps per DUT (alternating DUTs)")
    p.add_argument("--auth", choices=("digest", "trusted", "both"), default="both",
                   help="digest: 407 + credentials per call (the product path, DUT 'chain'); "
                        "trusted: no 407\n(SIPp's network in [Online] TrustedPeers, DUT "
                        "'chain_trusted'); both: both DUTs")  # fmt: skip
    p.add_argument("--split", action="store_true",
                   help="the online service and the appliance in two processes (as in "
                        "production: online <-> edge on TCP); CPU per call of each "
                        "is reported")  # fmt: skip
    p.add_argument("--wire", action="store_true",
                   help="hops between the roles on loopback TCP sockets (hybridvoice up --wire), "
                        "not in-process pipes")  # fmt: skip
    p.add_argument("--chain-rates", default="300,400,450,500,550,600,650,700,800")
    p.add_argument("--mediation-rates", default="800,1000,1200,1300,1400,1500,1600,1800")
    p.add_argument("--sippy-rates", default="250,300,350,400,450")
    p.add_argument("--skip", default="", help="comma-separated: mediation,sippy,replication")
    p.add_argument("--gc-interval", type=float, default=600.0,
                   help="chain process GC: young generation only, a full collection every N s "
                        "(as the mediation role's entry does; 0: Python's default)")  # fmt: skip
    p.add_argument("--replicas", type=int, default=5, help="replication: appliances")
    p.add_argument("--changes", type=int, default=100, help="replication: writes")
    p.add_argument("--profile", action="store_true", help="add one cProfile run of the chain")
    p.add_argument("--profile-rate", type=int, default=150,
                   help="calls/s of the profiled run (low: cProfile doubles the CPU)")  # fmt: skip
    p.add_argument("--profile-top", type=int, default=30, help="functions listed")
    p.add_argument("--quick", action="store_true",
                   help="smoke test, under 2 minutes: 3 s runs, 1 repeat, 2 rates each (not a "
                        "max), 20 writes")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("/tmp/hv-bench-chain"))
    a = p.parse_args(argv)
    if a.quick:
        a.seconds = a.search_seconds = 3.0
        a.repeats = 1
        a.chain_rates, a.mediation_rates, a.sippy_rates = "200,400", "400,800", "200,300"
        a.changes = 20
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)")
        return 2
    skip = set(a.skip.split(","))
    if not (VENV / "b2bua").exists():
        print("sippy's b2bua is not in .venv (pip install sippy): skipped")
        skip.add("sippy")
    a.out.mkdir(parents=True, exist_ok=True)
    plan: dict[str, list[int]] = {}
    if a.auth in ("digest", "both"):
        plan["chain"] = _rates(a.chain_rates)
    if a.auth in ("trusted", "both"):
        plan["chain_trusted"] = _rates(a.chain_rates)
    if "mediation" not in skip:
        plan["mediation"] = _rates(a.mediation_rates)
    if "sippy" not in skip:
        plan["sippy"] = _rates(a.sippy_rates)
    ramps: dict[str, list[Ramp]] = {k: [] for k in plan}
    for _ in range(a.repeats):
        for kind, rates in plan.items():
            ramps[kind].append(ramp(kind, rates, a))
    startups = [
        r.startup_s for k in ("chain", "chain_trusted") for rs in ramps.get(k, []) for r in rs.runs
        if r.startup_s
    ]  # fmt: skip
    idle = None if a.quick else chain_idle_cpu(a)
    repl = None if "replication" in skip else replication_latency(a.replicas, a.changes)
    table = summarise(ramps)
    print_report(table, startups, repl, a)
    if idle is not None:
        print(f"chain process idle (no calls, {IDLE_S:g} s after ready): {idle:.1f}% of a core")
    summary = {"table": table, "startup_s": startups, "replication": repl, "idle_pct": idle,
               "args": {
        k: str(v) for k, v in vars(a).items()}}  # fmt: skip
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))
    if a.profile:
        profile_chain(a.profile_rate, min(a.seconds, 10.0), a, a.profile_top)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
