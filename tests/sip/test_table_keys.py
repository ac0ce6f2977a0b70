"""The enums that key the cores' tables hash by identity in C (``TableKey``), not by
``Enum.__hash__`` (Python code run on every lookup)."""

from __future__ import annotations

import copy
import enum
import pickle

import pytest

from hybridvoice.sip import (
    _session_ack,
    _session_cancel,
    _session_offer,
    _session_refresh,
    dialog,
    refer,
)
from hybridvoice.sip._tables import TableKey
from hybridvoice.sip.session import TRANSITIONS, Role, State, Trigger

KEYED: list[type[enum.Enum]] = [
    State, Trigger, Role, dialog.DialogState, refer.NotifierPhase, refer.SubscriberPhase,
    _session_ack.RetransmitPhase, _session_ack.LatePhase, _session_cancel.CancelPhase,
    _session_offer.OfferPhase, _session_refresh.RefreshPhase,
]  # fmt: skip


@pytest.mark.parametrize("cls", KEYED, ids=lambda c: c.__name__)
def test_table_enums_hash_in_c(cls: type[enum.Enum]) -> None:
    assert issubclass(cls, TableKey)
    assert cls.__hash__ is object.__hash__
    for member in cls:
        assert {member: 1}[member] == 1
        assert cls(member.value) is member
        assert pickle.loads(pickle.dumps(member)) is member
        assert copy.deepcopy(member) is member


def test_transitions_still_look_up() -> None:
    assert TRANSITIONS[State.NULL][Trigger.SEND_INVITE] is State.CALLING
    assert TRANSITIONS[State.CONNECTING][Trigger.ACKED] is State.CONFIRMED
