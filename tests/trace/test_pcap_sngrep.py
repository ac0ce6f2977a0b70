"""The pcap export (trace/pcap.py) read by Debian's sngrep without its interface (``-N``):
it finds the call's dialog and writes all seven of its SIP messages back out, over UDP and
over synthesized TCP. sngrep is stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_pcap_tshark import capture, tshark

from hybridvoice.trace.pcap import pcap_bytes

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sngrep") is None, reason="sngrep not installed"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_sngrep_finds_the_dialog_and_every_message(tmp_path: Path, transport: str) -> None:
    source, out = tmp_path / "call.pcap", tmp_path / "sngrep.pcap"
    messages = capture(transport, ("127.0.0.1", 40100), ("127.0.0.1", 15080), "sngrep-call")
    source.write_bytes(pcap_bytes(messages))
    args = ["sngrep", "-N", "-I", str(source), "-O", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "Dialog count: 1" in output
    assert len(tshark(out, "-Y", "sip")) == 7
