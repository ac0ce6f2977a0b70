"""A challenged BYE of the sans-IO UA core (RFC 3261 §22.2, §15.1.1): the BYE goes again with
credentials and a new CSeq, and the headers the application put on it (``bye(headers=...)``,
a ``Reason``, RFC 3326) appear once, as on the first BYE.

Over the in-memory two-node harness of ``test_ua_core`` (real transaction layers, fake clock).
"""

from __future__ import annotations

from test_ua_core import Net, Node, OneAnswer

from hybridvoice.sip import Request, Response
from hybridvoice.sip.message import make_response
from hybridvoice.sip.session import Cause, Disconnected


def _byes(node: Node) -> list[Request]:
    return [m for m in node.wire if isinstance(m, Request) and m.method == "BYE"]


def test_a_challenged_bye_is_sent_again_with_its_reason_once() -> None:
    net = Net()
    a, _ = net.connect()
    auth = a.auth = OneAnswer()
    challenged: list[Request] = []

    def challenge_first_bye(node: Node, message: Request | Response) -> bool:
        if isinstance(message, Request) and message.method == "BYE" and not challenged:
            challenged.append(message)
            return True  # bob never sees it; a proxy answers 407 instead
        return False

    net.drop = challenge_first_bye
    net.carry(net.a, a.bye(headers=[("Reason", 'SIP;cause=16;text="done"')]))
    (first,) = challenged
    assert first.headers.values("Reason") == ['SIP;cause=16;text="done"']
    challenge = ("Proxy-Authenticate", 'Digest realm="x", nonce="n"')
    net.a.layer.receive_response(make_response(first, 407, headers=[challenge]), net.now)
    net.pump()

    assert auth.answered == 1
    _, again = _byes(net.a)
    assert again.headers.values("Reason") == ['SIP;cause=16;text="done"']
    assert again.headers.values("Proxy-Authorization") == ['Digest username="alice"']
    assert first.cseq is not None and again.cseq is not None
    assert again.cseq.seq == first.cseq.seq + 1
    assert net.a.events(Disconnected) == [Disconnected(Cause.NORMAL, None, "local")]
    assert net.b.events(Disconnected) == [Disconnected(Cause.NORMAL, None, "remote")]
