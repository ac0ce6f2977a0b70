"""The rolling update's adapter pieces without real appliances: the site file (errors name the key),
installations side by side, the process controller on stand-in programs (command line, PYTHONPATH,
stop by PID, SIGKILL after the grace time, refusing a PID that is no appliance), and the driver
against a simulated site over HTTP (httpx's MockTransport)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import lab_settings, render_settings
from hybridvoice.mgmt.update_plan import Rollout, RolloutTimers
from hybridvoice.mgmt.update_procs import ProcessController, is_appliance_process
from hybridvoice.mgmt.update_run import (
    RolloutBusyError,
    RolloutDriver,
    read_views,
    rollout_lock,
    rollout_owner,
)
from hybridvoice.mgmt.update_site import (
    Installation,
    SiteAppliance,
    UpdateSiteError,
    installation,
    load_update_site,
)

#: a stand-in ``hybridvoice`` package: records how it was run, then waits to be stopped
FAKE_MAIN = """
import json, os, signal, sys, time
from pathlib import Path
if os.environ.get("STUBBORN"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
state = Path(sys.argv[sys.argv.index("--state-dir") + 1])
state.mkdir(parents=True, exist_ok=True)
import hybridvoice
(state / "ran.json").write_text(json.dumps({"argv": sys.argv[1:], "version":
    hybridvoice.__version__, "pythonpath": os.environ.get("PYTHONPATH"), "pid": os.getpid()}))
while True:
    time.sleep(0.2)
"""


def fake_version(root: Path, version: str) -> Path:
    package = root / version / "src" / "hybridvoice"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (package / "__main__.py").write_text(FAKE_MAIN)
    return root / version


def site_file(tmp: Path, settings: Settings, count: int = 1, **extra: str) -> Path:
    lines = ['Site = "Lab"', 'VersionsDirectory = "versions"'] + [
        f"{k} = {json.dumps(v)}" for k, v in extra.items()
    ]
    for n in range(count):
        name = f"appliance{n + 1}"
        config = tmp / f"{name}.toml"
        raw = settings_raw(settings)
        raw["Common"]["ServerName"] = name
        raw["Management"]["Port"] = 18000 + n
        config.write_text(render_settings(parse_settings(raw)))
        lines += ["[[Appliances]]", f'Config = "{config.name}"', f'StateDirectory = "st/{name}"']
    path = tmp / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def settings() -> Settings:
    raw = settings_raw(lab_settings())
    raw["Common"]["SiteName"] = "Lab"
    return parse_settings(raw)


# --- the site file -------------------------------------------------------------------------------


def test_site_file(tmp_path: Path, settings: Settings) -> None:
    site = load_update_site(site_file(tmp_path, settings, 2))
    assert site.site == "Lab" and site.versions_dir == tmp_path / "versions"
    assert site.state_file == tmp_path / "rollout-Lab.json"
    assert [a.name for a in site.appliances] == ["appliance1", "appliance2"]
    assert site.appliances[1].api.endswith(":18001")
    assert site.appliances[0].state_dir == tmp_path / "st" / "appliance1"
    assert site.installations() == {}
    fake_version(tmp_path / "versions", "2.0")
    venv = tmp_path / "versions" / "1.0" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text("")
    (tmp_path / "versions" / "junk").mkdir()
    found = site.installations()
    assert sorted(found) == ["1.0", "2.0"]
    assert found["1.0"].python == str(venv / "python") and found["1.0"].pythonpath is None
    assert found["2.0"].pythonpath == str(tmp_path / "versions" / "2.0" / "src")
    assert installation(tmp_path / "versions" / "junk") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Site = 1", "Site: Input should be a valid string"),
        ('Site = "Lab"\nVersionsDirectory = "v"\nAppliances = []', "Appliances: Tuple should"),
        ('Site = "Lab"\nVersionsDirectory = "v"\nColour = 1\n[[Appliances]]\nConfig = "a"\n'
         'StateDirectory = "s"', "Colour: Extra inputs"),
        ('Site = "Lab"\nVersionsDirectory = "v"\n[[Appliances]]\nConfig = "nope.toml"\n'
         'StateDirectory = "s"', "Appliances.0.Config: .*nope.toml: cannot read"),
        ('Site = "Lab"\nVersionsDirectory = "v"\n[[Appliances]]\nConfig = "a"\n'
         'StateDirectory = "s"\n[[Appliances]]\nConfig = "a"\nStateDirectory = "s"',
         "StateDirectory s is given to two appliances"),
        ("Site = [", "not TOML"),
    ],
)  # fmt: skip
def test_bad_site_files_name_the_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(UpdateSiteError, match=words):
        load_update_site(path)


def test_an_appliance_of_another_site_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = site_file(tmp_path, settings)
    path.write_text(path.read_text().replace('Site = "Lab"', 'Site = "Paris"'))
    with pytest.raises(UpdateSiteError, match="is an appliance of site 'Lab', not 'Paris'"):
        load_update_site(path)


# --- the process controller ----------------------------------------------------------------------


def _appliance(tmp: Path, **env: str) -> SiteAppliance:
    return SiteAppliance("a1", tmp / "a1.toml", tmp / "state", "http://127.0.0.1:1",
                         ("--drain-deadline", "5"), tuple(env.items()))  # fmt: skip


def _ran(tmp: Path) -> dict[str, Any]:
    path = tmp / "state" / "ran.json"
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def test_start_a_version_side_by_side_and_stop_it_by_pid(tmp_path: Path) -> None:
    install = installation(fake_version(tmp_path / "versions", "2.0"))
    assert install is not None
    procs = ProcessController(tmp_path / "logs")
    pid = procs.start(_appliance(tmp_path), install)
    try:
        ran = _ran(tmp_path)
        assert ran["version"] == "2.0" and ran["pid"] == pid
        assert ran["pythonpath"] == str(tmp_path / "versions" / "2.0" / "src")
        assert ran["argv"][:2] == ["appliance", "serve"]
        assert ran["argv"][2:] == ["--config", str(tmp_path / "a1.toml"), "--state-dir",
                                   str(tmp_path / "state"), "--drain-deadline", "5"]  # fmt: skip
        assert is_appliance_process(pid) and procs.pid_of("a1") == pid
        assert is_appliance_process(pid, tmp_path / "a1.toml")
        assert not is_appliance_process(pid, tmp_path / "a2.toml")
        stranger = ProcessController(tmp_path / "logs")  # not its child: checked by /proc
        with pytest.raises(ValueError, match=r"a2\.toml` on this host"):
            asyncio.run(stranger.stop(pid, 1.0, tmp_path / "a2.toml"))
        assert procs.exit_code("a1") is None  # still running
        assert asyncio.run(procs.stop(pid, 30.0)) == f"pid {pid} stopped"
        assert procs.pid_of("a1") is None and procs.exit_code("a1") is not None
        assert asyncio.run(procs.stop(pid, 1.0)) == f"pid {pid} had already exited"
    finally:
        if procs.pid_of("a1"):
            os.kill(pid, 9)


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    install = installation(fake_version(tmp_path / "versions", "2.0"))
    assert install is not None
    procs = ProcessController(tmp_path / "logs")
    pid = procs.start(_appliance(tmp_path, STUBBORN="1"), install)
    try:
        _ran(tmp_path)  # it has set its handler
        assert asyncio.run(procs.stop(pid, 1.0)) == f"pid {pid} killed after 1 s"
        assert procs.exit_code("a1") == -9
    finally:
        if procs.pid_of("a1"):
            os.kill(pid, 9)


def test_only_appliance_processes_are_stopped(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(ValueError, match=f"pid {other.pid} is not a running `hybridvoice"):
            asyncio.run(ProcessController(tmp_path).stop(other.pid, 1.0))
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


# --- the driver against a simulated site ---------------------------------------------------------


@dataclass
class FakeBox:
    api: str
    version: str = "1.0"
    running: bool = True
    maintenance: bool = False
    pid: int = 0


@dataclass
class FakeSite:
    """Appliance APIs and the online service behind one MockTransport; versions in ``bad``
    never become healthy (they report offline)."""

    boxes: dict[str, FakeBox]
    bad: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(f"{request.method} {url}")
        assert request.headers["authorization"] == "Bearer t"
        if url.startswith("http://online/v1/appliances/"):
            box = self.boxes[url.rsplit("/", 1)[1]]
            if not box.running or box.version in self.bad:
                return httpx.Response(200, json={"status": "offline", "version": box.version})
            status = "maintenance" if box.maintenance else "online"
            return httpx.Response(200, json={"status": status, "version": box.version})
        name, box = next((n, b) for n, b in self.boxes.items() if url.startswith(b.api))
        if not box.running:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/v1/status":
            state = "offline" if box.version in self.bad else (
                "maintenance" if box.maintenance else "online")  # fmt: skip
            return httpx.Response(200, json={
                "name": name, "version": box.version, "pid": box.pid, "state": state,
                "calls_now": 0, "online": {"registered": True},
                "health": {"failing": [{"check": "roles", "detail": "mediation"}]}
                if box.version in self.bad else {},
            })  # fmt: skip
        action = request.url.path.rsplit("/", 1)[1]
        box.maintenance = action == "enter"
        return httpx.Response(200, json={"state": "maintenance" if box.maintenance else "online"})


class FakeProcs:
    """The controller's interface over :class:`FakeSite`."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.started: dict[str, Any] = {}
        self.log: list[str] = []

    def start(self, appliance: SiteAppliance, install: Installation) -> int:
        box = self.site.boxes[appliance.name]
        assert not box.running
        box.version, box.running, box.maintenance, box.pid = install.version, True, False, 9000
        self.log.append(f"start {appliance.name} {install.version}")
        return box.pid

    def exit_code(self, name: str) -> int | None:
        return None

    def pid_of(self, name: str) -> int | None:
        return None

    async def stop(self, pid: int, grace: float, config: Path | None = None) -> str:
        box = next(b for b in self.site.boxes.values() if b.pid == pid and b.running)
        box.running = False
        self.log.append(f"stop {pid}")
        return f"pid {pid} stopped"


def _driver(tmp: Path, settings: Settings, fake: FakeSite, version: str) -> tuple[Any, Any]:
    site = load_update_site(site_file(tmp, settings, 2))
    for v in ("1.0", "2.0", "3.0"):
        fake_version(site.versions_dir, v)
    for n, a in enumerate(site.appliances):
        fake.boxes[a.name] = FakeBox(a.api, pid=100 + n)
    now = [1_000_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    timers = RolloutTimers(drain=30, stop=5, start=20, poll=0.01)
    rollout = Rollout([a.name for a in site.appliances], version,
                      installed=set(site.installations()), timers=timers)  # fmt: skip
    told: list[str] = []
    procs = FakeProcs(fake)
    driver = RolloutDriver(rollout, site, online="http://online", headers={"authorization":
                           "Bearer t"}, procs=procs, clock=clock, events=told.append,
                           transport=httpx.MockTransport(fake.handle))  # type: ignore[arg-type]  # fmt: skip
    return driver, (site, told, procs)


def test_the_driver_updates_a_site_through_its_apis(tmp_path: Path, settings: Settings) -> None:
    fake = FakeSite({})
    driver, (site, told, procs) = _driver(tmp_path, settings, fake, "2.0")
    end = asyncio.run(driver.run())
    assert end.outcome == "completed", end.summary
    assert procs.log == ["stop 100", "start appliance1 2.0", "stop 101", "start appliance2 2.0"]
    posts = [r.split("/v1/")[1] for r in fake.requests if r.startswith("POST")]
    assert posts == ["maintenance/enter", "maintenance/exit"] * 2
    state = json.loads(site.state_file.read_text())
    assert state["outcome"] == "completed" and state["site"] == "Lab"
    assert [a["state"] for a in state["appliances"]] == ["updated", "updated"]
    assert told[-1] == "completed: 2 appliance(s) updated to 2.0"
    assert "appliance1: healthy on 2.0" in told


def test_the_driver_rolls_back_a_version_that_stays_offline(
    tmp_path: Path, settings: Settings
) -> None:
    fake = FakeSite({}, bad={"3.0"})
    driver, (_, _, procs) = _driver(tmp_path, settings, fake, "3.0")
    end = asyncio.run(driver.run())
    assert end.outcome == "rolled-back"
    assert "it reports offline (roles: mediation)" in end.summary
    assert procs.log == ["stop 100", "start appliance1 3.0", "stop 9000", "start appliance1 1.0"]
    assert {b.version for b in fake.boxes.values()} == {"1.0"}
    assert not any(b.maintenance for b in fake.boxes.values())


def test_plan_views(tmp_path: Path, settings: Settings) -> None:
    fake = FakeSite({})
    site = load_update_site(site_file(tmp_path, settings, 2))
    fake.boxes["appliance1"] = FakeBox(site.appliances[0].api)
    fake.boxes["appliance2"] = FakeBox(site.appliances[1].api, running=False)
    views = asyncio.run(read_views(site, "http://online", {"authorization": "Bearer t"},
                                   transport=httpx.MockTransport(fake.handle)))  # fmt: skip
    assert views["appliance1"].healthy("1.0") is None
    assert views["appliance2"].healthy() == "its API does not answer (connection refused)"


def test_one_rollout_of_a_site_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "rollout-Lab.json"
    assert rollout_owner(state) is None
    with rollout_lock(state):
        assert rollout_owner(state) == os.getpid()
        with pytest.raises(RolloutBusyError, match=f"another rollout of this site runs \\(pid "
                           f"{os.getpid()}\\)"), rollout_lock(state):  # fmt: skip
            pass
    assert rollout_owner(state) is None
    with rollout_lock(state):  # free again
        pass
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(state) + '.lock'!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, b'424242')\nprint('held', flush=True)\n"
        "time.sleep(60)\n"
    )], stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(RolloutBusyError) as busy, rollout_lock(state):
            pass
        assert busy.value.pid is not None
    finally:
        holder.kill()
        holder.wait()
    with rollout_lock(state):  # the kernel released it with the process
        pass
