"""The etcd backend of the store interface (:mod:`.kv`): an etcd v3 cluster through ``aetcd``
(asyncio gRPC). etcd gives the semantics :mod:`.kv` describes natively (revisions, Txn compares
on ``mod_revision``, leases, watches from a revision, compaction).

Members: the store is given every member's client address and talks to one at a time; when
that member refuses the connection (stopped, unreachable) the request goes to the next. Reads
are linearizable, so a member cut off from the majority answers nothing: without quorum every
request ends in :class:`~.kv.StoreUnavailableError`, naming the members and what each said. A write
whose outcome is unknown (the member took it and then timed out) is not sent again elsewhere
(a compare-and-swap repeated could report a conflict with itself): the error says so.

A leader election (a member stopped, or raft heartbeats late on a starved machine) makes
every member answer "no leader" for about an election timeout: a request that finds no member
with a leader but at least one that answered "no leader" tries the members again (every
:data:`ELECTION_RETRY` seconds) until the store's ``timeout`` has passed since it began, so an
election in progress is waited out instead of failing the request; when no member has a
leader for that long (quorum lost) the error is the same as before. A member that refuses the
connection is not waited for.

An adapter (named in pyproject's import-linter contract).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import aetcd
import aetcd.exceptions as aetcd_errors
import aetcd.rpc as etcd_rpc
from grpc.aio import AioRpcError

from .kv import (
    CompactedError,
    Event,
    EventKind,
    KeyValue,
    KeyValueStore,
    LeaseNotFoundError,
    Range,
    StoreError,
    StoreUnavailableError,
    TxnResult,
    check_key,
    check_number,
    check_value,
    prefix_end,
)

__all__ = ["EtcdStore", "parse_endpoints"]

T = TypeVar("T")

# reconnect to a member that comes back within seconds, not gRPC's default of up to 2 minutes
_CHANNEL_OPTIONS: Final = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
}
_REQUIRE_LEADER: Final = (("hasleader", "true"),)
_UNREACHABLE: Final = (aetcd_errors.ConnectionFailedError,)
_UNKNOWN_OUTCOME: Final = (aetcd_errors.ConnectionTimeoutError, aetcd_errors.InternalError)
#: seconds between two passes over the members while they elect a leader
ELECTION_RETRY: Final = 0.25


def parse_endpoints(endpoints: Sequence[str]) -> list[tuple[str, int]]:
    """``host:port`` or ``http://host:port`` for each member; StoreError naming a bad one."""
    if isinstance(endpoints, str) or not endpoints:
        raise StoreError(f"etcd endpoints {endpoints!r}: give a list of member addresses")
    out = []
    for text in endpoints:
        url = urlsplit(text if "://" in text else f"http://{text}")
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme != "http" or not url.hostname or port is None or url.path not in ("", "/"):
            raise StoreError(
                f"etcd endpoint {text!r}: expected host:port or http://host:port "
                "(TLS to etcd is not supported yet)"
            )
        out.append((url.hostname, port))
    return out


class EtcdStore:
    """The store on an etcd cluster. ``timeout``: seconds a member has to answer one request
    (an election takes about a second; keep it well above)."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0) -> None:
        self._members = parse_endpoints(endpoints)
        if timeout <= 0:
            raise StoreError(f"etcd timeout {timeout!r}: must be more than 0 seconds")
        self._timeout = timeout
        self._clients: list[aetcd.Client | None] = [None] * len(self._members)
        self._current = 0

    def _client(self, i: int) -> aetcd.Client:
        client = self._clients[i]
        if client is None:
            host, port = self._members[i]
            client = aetcd.Client(host, port, timeout=self._timeout, options=_CHANNEL_OPTIONS)
            # a member cut off from the leader answers "no leader" at once (and ends watches)
            # instead of letting requests time out
            client.metadata = _REQUIRE_LEADER
            self._clients[i] = client
        return client

    def _name(self, i: int) -> str:
        host, port = self._members[i]
        return f"{host}:{port}"

    async def _call(self, op: Callable[[aetcd.Client], Awaitable[T]], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            said: list[str] = []
            try:
                return await self._pass(op, write, said)
            except _ElectionError:
                if loop.time() + ELECTION_RETRY > deadline:
                    raise StoreUnavailableError(_NO_MEMBER + "; ".join(said)) from None
                await asyncio.sleep(ELECTION_RETRY)

    async def _pass(
        self, op: Callable[[aetcd.Client], Awaitable[T]], write: bool, said: list[str]
    ) -> T:
        """One try of every member, from the current one; :class:`_ElectionError` when none
        took it and one of them answered "no leader" (an election may be under way)."""
        election = False
        for step in range(len(self._members)):
            i = (self._current + step) % len(self._members)
            try:
                result = await _mapped(op(self._client(i)))
            except _RefusedError as exc:
                said.append(f"{self._name(i)}: {exc}")
                election = election or _NO_LEADER in str(exc)
                continue
            except _UnknownOutcomeError as exc:
                said.append(f"{self._name(i)}: {exc}")
                if write:
                    raise StoreUnavailableError(
                        "etcd: no answer in time (the cluster may have lost quorum); the write "
                        f"may or may not have been applied, read the key to know: {'; '.join(said)}"
                    ) from None
                continue
            self._current = i
            return result
        if election:
            raise _ElectionError
        raise StoreUnavailableError(_NO_MEMBER + "; ".join(said))

    # -- reads

    async def get(self, key: str) -> KeyValue | None:
        raw = check_key(key)
        got = await self._call(lambda c: c.get(raw), write=False)
        return None if got is None else _kv(got)

    async def range(self, prefix: str, *, limit: int = 0) -> Range:
        lo = check_key(prefix, "prefix")
        limit = check_number("limit", limit, 0)
        got = await self._range(
            etcd_rpc.RangeRequest(key=lo or b"\x00", range_end=prefix_end(lo), limit=limit)
        )
        return Range(tuple(_kv(kv) for kv in got.kvs), int(got.header.revision))

    async def revision(self) -> int:
        got = await self._range(etcd_rpc.RangeRequest(key=b"\x00", count_only=True))
        return int(got.header.revision)

    async def _range(self, request: Any) -> Any:
        async def ranged(c: aetcd.Client) -> Any:
            await c.connect()
            return await c.kvstub.Range(request, timeout=self._timeout, metadata=c.metadata)

        return await self._call(ranged, write=False)

    # -- writes

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        raw = check_key(key)
        data = check_value(key, value)
        check_number("lease", lease, 0)
        try:
            put = await self._call(lambda c: c.put(raw, data, lease=lease or None), write=True)
        except LeaseNotFoundError:
            raise LeaseNotFoundError(lease) from None
        return int(put.header.revision)

    async def delete(self, key: str) -> int | None:
        raw = check_key(key)
        gone = await self._call(lambda c: c.delete(raw), write=True)
        return None if gone is None else int(gone.header.revision)

    async def put_if(
        self, key: str, value: bytes, *, mod_revision: int, lease: int = 0
    ) -> TxnResult:
        raw = check_key(key)
        data = check_value(key, value)
        check_number("mod_revision", mod_revision, 0)
        check_number("lease", lease, 0)
        op = etcd_rpc.RequestOp(request_put=etcd_rpc.PutRequest(key=raw, value=data, lease=lease))
        try:
            return await self._txn(raw, mod_revision, op)
        except LeaseNotFoundError:
            raise LeaseNotFoundError(lease) from None

    async def delete_if(self, key: str, *, mod_revision: int) -> TxnResult:
        raw = check_key(key)
        check_number("mod_revision", mod_revision, 0)
        op = etcd_rpc.RequestOp(request_delete_range=etcd_rpc.DeleteRangeRequest(key=raw))
        return await self._txn(raw, mod_revision, op)

    async def _txn(self, raw: bytes, mod_revision: int, op: Any) -> TxnResult:
        compare = etcd_rpc.Compare(
            key=raw,
            result=etcd_rpc.Compare.EQUAL,
            target=etcd_rpc.Compare.MOD,
            mod_revision=mod_revision,
        )
        request = etcd_rpc.TxnRequest(compare=[compare], success=[op])

        async def txn(c: aetcd.Client) -> Any:
            await c.connect()
            return await c.kvstub.Txn(request, timeout=self._timeout, metadata=c.metadata)

        got = await self._call(txn, write=True)
        return TxnResult(bool(got.succeeded), int(got.header.revision))

    async def compact(self, revision: int) -> None:
        check_number("compact revision", revision, 1)
        await self._call(lambda c: c.compact(revision), write=True)

    # -- leases

    async def grant(self, ttl: int) -> int:
        check_number("lease ttl", ttl, 1)
        lease = await self._call(lambda c: c.lease(ttl), write=True)
        return int(lease.id)

    async def keep_alive(self, lease: int) -> None:
        check_number("lease", lease, 1)
        try:
            reply = await self._call(lambda c: c.refresh_lease(lease), write=False)
        except LeaseNotFoundError:
            reply = None
        if reply is None or reply.TTL <= 0:
            raise LeaseNotFoundError(lease)

    async def revoke(self, lease: int) -> None:
        check_number("lease", lease, 1)
        try:
            await self._call(lambda c: c.revoke_lease(lease), write=True)
        except LeaseNotFoundError:
            raise LeaseNotFoundError(lease) from None

    # -- watch

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[Event]:
        lo = check_key(prefix, "prefix")
        check_number("start_revision", start_revision, 0)
        nxt = start_revision or await self.revision() + 1
        seen = 0  # events of revision nxt already delivered (a lease expiry has several)
        said: list[str] = []
        while len(said) < len(self._members):
            i = self._current
            try:
                watch = await _mapped(
                    self._client(i).watch(
                        lo or b"\x00", range_end=prefix_end(lo), start_revision=nxt
                    )
                )
                try:
                    skip = seen
                    async for ev in _events(watch):
                        said.clear()
                        rev = int(ev.kv.mod_revision)
                        if skip and rev == nxt:
                            skip -= 1
                            continue
                        seen = seen + 1 if rev == nxt else 1
                        nxt = rev
                        yield _event(ev)
                finally:
                    await asyncio.shield(watch.cancel())
            except aetcd_errors.RevisionCompactedError as exc:
                raise CompactedError(nxt, int(exc.compacted_revision)) from None
            except (_RefusedError, _UnknownOutcomeError) as exc:
                said.append(f"{self._name(i)}: {exc}")
                self._current = (i + 1) % len(self._members)
        raise StoreUnavailableError(
            f"etcd watch of {prefix!r} from revision {nxt}: no member answered: {'; '.join(said)}"
        )

    async def close(self) -> None:
        for client in self._clients:
            if client is not None:
                await client.close()
        self._clients = [None] * len(self._members)

    def __repr__(self) -> str:
        names = ", ".join(self._name(i) for i in range(len(self._members)))
        return f"<EtcdStore {names}>"


_NO_LEADER: Final = "no leader"
_NO_MEMBER: Final = (
    "etcd: no member answered (the cluster has no quorum, or its members are stopped "
    "or unreachable): "
)


class _ElectionError(Exception):
    """No member took the request and one answered "no leader": try them all again."""


class _RefusedError(Exception):
    """The member did not take the request (connection refused, no leader): try the next."""


class _UnknownOutcomeError(Exception):
    """The member may have taken the request (timed out)."""


async def _mapped(call: Awaitable[T]) -> T:
    try:
        return await call
    except aetcd_errors.RevisionCompactedError:
        raise
    except (aetcd_errors.ClientError, AioRpcError) as exc:
        raise _classify(exc) from None


def _classify(exc: Exception) -> Exception:
    text = str(exc.details() if isinstance(exc, AioRpcError) else exc) or type(exc).__name__
    if "lease not found" in text:
        return LeaseNotFoundError(0)
    if "compacted" in text:
        return StoreError(f"etcd: {text}")
    if "future revision" in text:
        return StoreError(f"etcd: {text}")
    if _NO_LEADER in text or isinstance(exc, _UNREACHABLE):
        return _RefusedError(text)
    if isinstance(exc, _UNKNOWN_OUTCOME) or "timed out" in text:
        return _UnknownOutcomeError(text)
    if isinstance(exc, AioRpcError):
        return _RefusedError(text)
    return StoreError(f"etcd: {text}")


async def _events(watch: Any) -> AsyncIterator[Any]:
    try:
        async for ev in watch:
            yield ev
    except aetcd_errors.RevisionCompactedError:
        raise
    except (aetcd_errors.ClientError, AioRpcError) as exc:
        raise _classify(exc) from None
    raise _RefusedError("the watch stream ended")


def _kv(kv: Any) -> KeyValue:
    return KeyValue(
        bytes(kv.key).decode(),
        bytes(kv.value),
        int(kv.create_revision),
        int(kv.mod_revision),
        int(kv.version),
        int(kv.lease),
    )


def _event(ev: Any) -> Event:
    kind = EventKind.PUT if ev.kind == "PUT" else EventKind.DELETE
    return Event(kind, bytes(ev.kv.key).decode(), bytes(ev.kv.value), int(ev.kv.mod_revision))


def _conforms(store: EtcdStore) -> KeyValueStore:  # mypy checks EtcdStore against the interface
    return store
