"""Tests for hybridvoice.sip.auth: RFC 7616 / RFC 2617 vectors, RFC 4475 §3.3.7, round trips."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.sip.auth import (
    HA1,
    SUPPORTED_ALGORITHMS,
    AuthError,
    AuthSyntaxError,
    AuthValue,
    Challenge,
    CredentialLookup,
    Credentials,
    DigestServer,
    Password,
    UnsupportedChallengeError,
    UnsupportedSchemeError,
    VerifyResult,
    authorize,
    choose_challenge,
)

# --- RFC 7616 §3.9.1 ------------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CHALLENGE = (
    'Digest\r\n    realm="http-auth@example.org",\r\n    qop="auth, auth-int",\r\n'
    f'    algorithm={{alg}},\r\n    nonce="{RFC7616_NONCE}",\r\n    opaque="{RFC7616_OPAQUE}"'
)
RFC7616_AUTHORIZATION = (
    'Digest username="Mufasa",\r\n    realm="http-auth@example.org",\r\n'
    '    uri="/dir/index.html",\r\n    algorithm={alg},\r\n'
    f'    nonce="{RFC7616_NONCE}",\r\n    nc=00000001,\r\n    cnonce="{RFC7616_CNONCE}",\r\n'
    '    qop=auth,\r\n    response="{response}",\r\n'
    f'    opaque="{RFC7616_OPAQUE}"'
)


@pytest.mark.parametrize(
    ("alg", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(alg: str, expected: str) -> None:
    challenge = Challenge.parse(RFC7616_CHALLENGE.format(alg=alg))
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.algorithm == alg
    credentials = authorize(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616_CNONCE,
    )
    assert credentials.response == expected
    assert credentials.qop == "auth"
    rfc = RFC7616_AUTHORIZATION.format(alg=alg, response=expected)
    assert Credentials.parse(rfc) == credentials
    assert Credentials.parse(str(credentials)) == credentials


@pytest.mark.parametrize(("alg", "hash_name"), [("MD5-sess", "md5"), ("SHA-256-sess", "sha256")])
def test_sess_response_computed_independently(alg: str, hash_name: str) -> None:
    """RFC 7616 §3.4.2: A1 = H(user:realm:password):nonce:cnonce for -sess."""

    def h(data: str) -> str:
        return hashlib.new(hash_name, data.encode()).hexdigest()

    challenge = Challenge.parse(RFC7616_CHALLENGE.format(alg=alg))
    credentials = authorize(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616_CNONCE,
    )
    ha1 = h(f"{h('Mufasa:http-auth@example.org:Circle of Life')}:{RFC7616_NONCE}:{RFC7616_CNONCE}")
    ha2 = h("GET:/dir/index.html")
    expected = h(f"{ha1}:{RFC7616_NONCE}:00000001:{RFC7616_CNONCE}:auth:{ha2}")
    assert credentials.response == expected
    assert credentials.algorithm == alg


def test_rfc2617_example() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com",\r\n        qop="auth,auth-int",\r\n'
        '        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
        '        opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.algorithm == "MD5"  # absent means MD5
    credentials = authorize(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    rfc = Credentials.parse(
        'Digest username="Mufasa",\r\n realm="testrealm@host.com",\r\n'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n uri="/dir/index.html",\r\n'
        ' qop=auth,\r\n nc=00000001,\r\n cnonce="0a4f113b",\r\n'
        ' response="6629fae49393a05397450978507c4ef1",\r\n'
        ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert rfc == credentials


# --- RFC 4475 §3.3.7 and other schemes ----------------------------------------------------------

RFC4475_NOOP = "NoOp response=NoOp, NoOpParam=NoOpValue"


def test_rfc4475_unknown_scheme_is_visible_to_the_uas() -> None:
    with pytest.raises(UnsupportedSchemeError) as caught:
        Credentials.parse(RFC4475_NOOP)
    assert caught.value.scheme == "NoOp"
    assert isinstance(caught.value, AuthError)
    assert isinstance(caught.value, ValueError)
    generic = AuthValue.parse(RFC4475_NOOP)
    assert generic == AuthValue("NoOp", (("response", "NoOp"), ("NoOpParam", "NoOpValue")))
    assert generic.param("noopparam") == "NoOpValue"
    assert AuthValue.parse(str(generic)) == generic


def test_token68_scheme() -> None:
    basic = AuthValue.parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert basic == AuthValue("Basic", token68="QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert str(basic) == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    with pytest.raises(UnsupportedSchemeError):
        Challenge.parse('Basic realm="x"')
    with pytest.raises(AuthSyntaxError):
        Challenge.parse("Digest abc")


# --- Grammar ------------------------------------------------------------------------------------


def test_lws_and_case_insensitive_names() -> None:
    challenge = Challenge.parse(
        ' dIgEsT  REALM = "sip.example.com" ,,NONCE\t=\t"n1" , Algorithm=sha-256-SESS,'
        '\r\n\tQop = "auth" , Stale=TRUE, x-Vendor = yes '
    )
    assert challenge == Challenge(
        "sip.example.com",
        "n1",
        algorithm="SHA-256-sess",
        qop=("auth",),
        stale=True,
        params=(("x-Vendor", "yes"),),
    )


def test_escapes_in_quoted_strings() -> None:
    challenge = Challenge.parse(
        r'Digest realm="say \"hi\" \\ \o/", nonce="a,b=c", opaque="", domain="sip:a sip:b"'
    )
    assert challenge.realm == 'say "hi" \\ o/'
    assert challenge.nonce == "a,b=c"
    assert challenge.opaque == ""
    assert challenge.domain == ("sip:a", "sip:b")
    text = str(challenge)
    assert r'realm="say \"hi\" \\ o/"' in text
    assert Challenge.parse(text) == challenge


def test_quoted_values_hash_unescaped() -> None:
    realm = 'Bob "the" realm\\'
    challenge = Challenge(realm, "n", qop=("auth",))
    credentials = Credentials.parse(
        str(
            authorize(
                Challenge.parse(str(challenge)),
                method="REGISTER",
                uri="sip:example.com",
                username="bob",
                password="pw",
                cnonce="c",
            )
        )
    )
    ha1 = hashlib.md5(f"bob:{realm}:pw".encode()).hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:example.com").hexdigest()
    expected = hashlib.md5(f"{ha1}:n:00000001:c:auth:{ha2}".encode()).hexdigest()
    assert credentials.realm == realm
    assert credentials.response == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        '"Digest" realm="a"',
        'Digest realm="a", nonce="unterminated',
        'Digest realm "a", nonce="n"',
        'Digest realm="a" nonce="n"',
        'Digest realm="a", realm="b", nonce="n"',
        'Digest realm="a", REALM="b", nonce="n"',
        'Digest realm=, nonce="n"',
        'Digest realm="a\r\nb", nonce="n"',
        'Digest realm="a\x01", nonce="n"',
        'Digest nonce="n"',
        'Digest realm="a"',
        'Digest,realm="a", nonce="n"',
    ],
)
def test_malformed_challenges(value: str) -> None:
    with pytest.raises(AuthSyntaxError):
        Challenge.parse(value)


@pytest.mark.parametrize("nc", ["1", "0000000A", "000000001", '"0000000g"'])
def test_nc_must_be_8_lowercase_hex(nc: str) -> None:
    with pytest.raises(AuthSyntaxError):
        Credentials.parse(
            f'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc={nc}'
        )


def test_constructors_refuse_unrepresentable_values() -> None:
    with pytest.raises(AuthSyntaxError):
        Challenge("line\nbreak", "n")
    with pytest.raises(AuthSyntaxError):
        Challenge("r", "n", qop=("auth int",))
    with pytest.raises(AuthSyntaxError):
        Challenge("r", "n", params=(("Realm", "again"),))
    with pytest.raises(AuthSyntaxError):
        Credentials("u", "r", "n", "sip:x", "resp", nc=1 << 32)


@given(st.text(max_size=60))
def test_parser_fails_only_with_auth_errors(value: str) -> None:
    for parse in (AuthValue.parse, Challenge.parse, Credentials.parse):
        with contextlib.suppress(AuthError):
            parse(value)


# --- Client side --------------------------------------------------------------------------------


def test_rfc2069_path_without_qop() -> None:
    challenge = Challenge.parse(
        'Digest realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    )
    credentials = authorize(
        challenge,
        method="INVITE",
        uri="sip:bob@biloxi.com",
        username="bob",
        password="zanzibar",
        cnonce="ignored",
        nc=7,
    )
    ha1 = hashlib.md5(b"bob:biloxi.com:zanzibar").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:bob@biloxi.com").hexdigest()
    nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    assert credentials.response == hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    assert (credentials.qop, credentials.cnonce, credentials.nc) == (None, None, None)
    text = str(credentials)
    assert "cnonce" not in text
    assert "nc=" not in text
    assert "qop" not in text


def test_sess_without_qop_is_refused() -> None:
    with pytest.raises(UnsupportedChallengeError):
        authorize(
            Challenge("r", "n", algorithm="MD5-sess"),
            method="REGISTER",
            uri="sip:r",
            username="u",
            password="p",
            cnonce="c",
        )


def test_auth_int_only_when_it_is_the_only_option() -> None:
    def answer(qop: tuple[str, ...]) -> Credentials:
        return authorize(
            Challenge("r", "n", qop=qop),
            method="MESSAGE",
            uri="sip:a@b",
            username="u",
            password="p",
            body=b"hi",
            cnonce="c",
        )

    assert answer(("auth-int", "auth")).qop == "auth"
    assert answer(("AUTH-INT", "Auth")).qop == "auth"  # ABNF literals are case-insensitive
    only = answer(("auth-int",))
    assert only.qop == "auth-int"
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(f"MESSAGE:sip:a@b:{hashlib.md5(b'hi').hexdigest()}".encode()).hexdigest()
    assert only.response == hashlib.md5(f"{ha1}:n:00000001:c:auth-int:{ha2}".encode()).hexdigest()


def test_unsupported_challenges() -> None:
    for challenge in (
        Challenge("r", "n", algorithm="SHA-512-256", qop=("auth",)),
        Challenge("r", "n", qop=("auth-conf",)),
    ):
        with pytest.raises(UnsupportedChallengeError):
            authorize(challenge, method="M", uri="sip:x", username="u", password="p", cnonce="c")


def test_userhash() -> None:
    challenge = Challenge("sip.example.com", "n", algorithm="SHA-256", qop=("auth",), userhash=True)
    credentials = authorize(
        Challenge.parse(str(challenge)),
        method="REGISTER",
        uri="sip:example.com",
        username="J\u00e4s\u00f8n",
        password="p",
        cnonce="c",
    )
    expected = hashlib.sha256("J\u00e4s\u00f8n:sip.example.com".encode()).hexdigest()
    assert credentials.username == expected
    assert credentials.userhash
    assert "userhash=true" in str(credentials)


def test_choose_challenge_prefers_the_strongest() -> None:
    md5 = Challenge("r", "n1", algorithm="MD5", qop=("auth",))
    md5_sess = Challenge("r", "n2", algorithm="MD5-sess", qop=("auth",))
    sha = Challenge("r", "n3", algorithm="SHA-256", qop=("auth",))
    sha_sess = Challenge("r", "n4", algorithm="SHA-256-sess", qop=("auth",))
    future = Challenge("r", "n5", algorithm="SHA-512-256", qop=("auth",))
    assert choose_challenge([md5, sha]) is sha
    assert choose_challenge([future, md5, sha_sess, sha]) is sha_sess  # server order among equals
    assert choose_challenge([future, md5_sess, md5]) is md5_sess
    assert choose_challenge([Challenge("r", "n", algorithm="MD5-sess"), md5]) is md5
    with pytest.raises(UnsupportedChallengeError):
        choose_challenge([future])
    with pytest.raises(UnsupportedChallengeError):
        choose_challenge([])


# --- Server side --------------------------------------------------------------------------------

SECRET = bytes(range(32))
URI = "sip:registrar.example.com"
USERS = {"alice": "wonderland"}


def password_lookup(username: str, realm: str, algorithm: str) -> Password | HA1 | None:
    password = USERS.get(username)
    return None if password is None else Password(password)


def ha1_lookup(username: str, realm: str, algorithm: str) -> Password | HA1 | None:
    password = USERS.get(username)
    if password is None:
        return None
    hash_name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]
    return HA1(hashlib.new(hash_name, f"{username}:{realm}:{password}".encode()).hexdigest())


def sign(
    challenge: Challenge,
    *,
    password: str = "wonderland",
    username: str = "alice",
    nc: int = 1,
    method: str = "REGISTER",
    uri: str = URI,
    body: bytes = b"",
) -> Credentials:
    """Client side, over the wire: parse the challenge text, serialise the credentials."""
    credentials = authorize(
        choose_challenge([Challenge.parse(str(challenge))]),
        method=method,
        uri=uri,
        username=username,
        password=password,
        body=body,
        cnonce=f"cnonce-{nc}",
        nc=nc,
    )
    return Credentials.parse(str(credentials))


@pytest.mark.parametrize("lookup", [password_lookup, ha1_lookup])
@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
def test_round_trip(algorithm: str, lookup: CredentialLookup, qop: str) -> None:
    server = DigestServer("example.com", SECRET, algorithms=(algorithm,), qop=(qop,))
    (challenge,) = server.challenges(100.0)
    assert challenge.algorithm == algorithm
    credentials = sign(challenge, body=b"v=0\r\n")
    assert credentials.algorithm == algorithm
    result = server.verify(
        credentials, method="REGISTER", body=b"v=0\r\n", now=101.0, lookup=lookup, uri=URI
    )
    assert result is VerifyResult.OK
    assert result.ok


def test_lookup_gets_the_base_algorithm() -> None:
    calls: list[tuple[str, str, str]] = []

    def lookup(username: str, realm: str, algorithm: str) -> Password | HA1 | None:
        calls.append((username, realm, algorithm))
        return Password("wonderland")

    server = DigestServer("example.com", SECRET, algorithms=("SHA-256-sess",))
    credentials = sign(server.challenges(0.0)[0])
    assert server.verify(credentials, method="REGISTER", now=1.0, lookup=lookup).ok
    assert calls == [("alice", "example.com", "SHA-256")]


def test_challenges_list_algorithms_in_preference_order() -> None:
    server = DigestServer("example.com", SECRET)
    sha, md5 = server.challenges(5.0)
    assert (sha.algorithm, md5.algorithm) == ("SHA-256", "MD5")
    assert sha.nonce == md5.nonce
    assert sha.qop == ("auth",)
    assert server.challenges(5.0)[0].nonce != sha.nonce  # unique even at the same instant
    assert choose_challenge([md5, sha]) is sha


def test_wrong_password_unknown_user_and_wrong_method() -> None:
    server = DigestServer("example.com", SECRET)
    challenge = server.challenges(0.0)[0]

    def verify(credentials: Credentials, method: str = "REGISTER") -> VerifyResult:
        return server.verify(credentials, method=method, now=1.0, lookup=password_lookup)

    assert verify(sign(challenge, password="guess")) is VerifyResult.BAD_RESPONSE
    assert verify(sign(challenge, username="mallory")) is VerifyResult.UNKNOWN_USER
    assert verify(sign(challenge), method="INVITE") is VerifyResult.BAD_RESPONSE
    assert verify(sign(challenge)) is VerifyResult.OK


def test_stale_nonce() -> None:
    server = DigestServer("example.com", SECRET, nonce_lifetime=30.0)
    challenge = server.challenges(1000.0)[0]
    good, bad = sign(challenge), sign(challenge, password="guess")
    late = 1031.0
    assert server.verify(good, method="REGISTER", now=late, lookup=password_lookup) is (
        VerifyResult.STALE
    )
    # stale=true only tells a client that knows the password (RFC 7616 §3.3).
    assert server.verify(bad, method="REGISTER", now=late, lookup=password_lookup) is (
        VerifyResult.BAD_RESPONSE
    )
    fresh = server.challenges(late, stale=True)[0]
    assert fresh.stale
    assert "stale=true" in str(fresh)
    assert Challenge.parse(str(fresh)).stale
    assert server.verify(sign(fresh), method="REGISTER", now=late, lookup=password_lookup).ok


def test_replayed_nonce_count() -> None:
    server = DigestServer("example.com", SECRET)
    challenge = server.challenges(0.0)[0]

    def verify(nc: int) -> VerifyResult:
        return server.verify(sign(challenge, nc=nc), method="REGISTER", now=1.0, lookup=ha1_lookup)

    assert verify(1) is VerifyResult.OK
    assert verify(1) is VerifyResult.REPLAYED
    assert verify(3) is VerifyResult.OK
    assert verify(2) is VerifyResult.OK  # out of order (UDP), still inside the window
    assert verify(2) is VerifyResult.REPLAYED
    assert verify(3) is VerifyResult.REPLAYED
    assert verify(1000) is VerifyResult.OK
    assert verify(4) is VerifyResult.REPLAYED  # fell out of the window: refused
    assert verify(1000 - 64) is VerifyResult.REPLAYED  # just outside the 64-count window
    assert verify(1000 - 63) is VerifyResult.OK
    assert verify(0xFFFFFFFF) is VerifyResult.OK
    assert verify(0xFFFFFFFF) is VerifyResult.REPLAYED


def test_nonce_state_is_bounded() -> None:
    server = DigestServer("example.com", SECRET, nonce_lifetime=10.0, max_nonces=2)
    first, second, third = (server.challenges(t)[0] for t in (0.0, 1.0, 2.0))
    for challenge in (first, second, third):
        assert server.verify(sign(challenge), method="REGISTER", now=3.0, lookup=ha1_lookup).ok
    assert server.tracked_nonces <= 2
    # first's nc state was dropped: its nonce must not become replayable, so it is stale.
    again = sign(first, nc=1)
    assert server.verify(again, method="REGISTER", now=3.0, lookup=ha1_lookup) is (
        VerifyResult.STALE
    )
    assert server.verify(sign(third, nc=2), method="REGISTER", now=4.0, lookup=ha1_lookup).ok
    # Once everything has expired, the next use sweeps by age.
    late = server.challenges(20.0)[0]
    assert server.verify(sign(late), method="REGISTER", now=20.0, lookup=ha1_lookup).ok
    assert server.tracked_nonces == 1


def test_nonce_state_expires_by_age() -> None:
    server = DigestServer("example.com", SECRET, nonce_lifetime=10.0)
    for t in (0.0, 1.0, 2.0):
        assert server.verify(
            sign(server.challenges(t)[0]), method="REGISTER", now=t, lookup=ha1_lookup
        ).ok
    assert server.tracked_nonces == 3
    late = server.challenges(30.0)[0]
    assert server.verify(sign(late), method="REGISTER", now=30.0, lookup=ha1_lookup).ok
    assert server.tracked_nonces == 1


def test_bad_nonces_realms_algorithms_and_qops() -> None:
    server = DigestServer("example.com", SECRET, algorithms=("SHA-256",))
    challenge = server.challenges(0.0)[0]

    def verify(credentials: Credentials, uri: str | None = None) -> VerifyResult:
        return server.verify(
            credentials, method="REGISTER", now=1.0, lookup=password_lookup, uri=uri
        )

    other = DigestServer("example.com", b"another secret of 32 bytes......")
    assert verify(sign(other.challenges(0.0)[0])) is VerifyResult.BAD_NONCE
    nonce = challenge.nonce
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    assert verify(sign(Challenge("example.com", flipped, "", "SHA-256", ("auth",)))) is (
        VerifyResult.BAD_NONCE
    )
    assert verify(sign(Challenge("example.com", "short", None, "SHA-256", ("auth",)))) is (
        VerifyResult.BAD_NONCE
    )
    assert verify(sign(Challenge("elsewhere", challenge.nonce, qop=("auth",)))) is (
        VerifyResult.WRONG_REALM
    )
    assert server.verify(sign(challenge), method="REGISTER", now=-1.0, lookup=password_lookup) is (
        VerifyResult.BAD_NONCE  # issued in the future
    )
    assert verify(sign(Challenge("example.com", challenge.nonce, qop=("auth",)))) is (
        VerifyResult.BAD_ALGORITHM  # MD5 downgrade
    )
    assert verify(sign(Challenge("example.com", challenge.nonce, algorithm="SHA-256"))) is (
        VerifyResult.BAD_QOP  # RFC 2069 answer
    )
    assert verify(sign(challenge), uri="sip:elsewhere.example.com") is VerifyResult.BAD_URI
    no_cnonce = dataclasses.replace(sign(challenge), cnonce=None)
    assert verify(no_cnonce) is VerifyResult.MALFORMED
    assert verify(dataclasses.replace(sign(challenge), nc=0)) is VerifyResult.MALFORMED
    assert verify(dataclasses.replace(sign(challenge), userhash=True)) is VerifyResult.MALFORMED
    assert verify(sign(challenge), uri=URI) is VerifyResult.OK


def test_server_configuration_errors() -> None:
    with pytest.raises(AuthError):
        DigestServer("r", b"short")
    with pytest.raises(AuthError):
        DigestServer("r", SECRET, algorithms=("SHA-512-256",))
    with pytest.raises(AuthError):
        DigestServer("r", SECRET, algorithms=("MD5", "md5"))
    with pytest.raises(AuthError):
        DigestServer("r", SECRET, qop=())
    with pytest.raises(AuthError):
        DigestServer("r", SECRET).challenges(float("nan"))


def test_secrets_stay_out_of_reprs() -> None:
    assert "wonderland" not in repr(Password("wonderland"))
    assert "abc123" not in repr(HA1("abc123"))


# --- Round-trip properties ----------------------------------------------------------------------

_RESERVED = {
    "realm",
    "nonce",
    "opaque",
    "algorithm",
    "qop",
    "stale",
    "domain",
    "userhash",
    "username",
    "uri",
    "response",
    "cnonce",
    "nc",
}
tokens = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", fullmatch=True)
texts = st.text(st.one_of(st.characters(exclude_categories=("Cc", "Cs")), st.just("\t")))
algorithms = st.one_of(
    st.sampled_from(SUPPORTED_ALGORITHMS),
    tokens.filter(lambda t: t.lower() not in {a.lower() for a in SUPPORTED_ALGORITHMS}),
)
extra_params = st.lists(
    st.tuples(tokens.filter(lambda t: t.lower() not in _RESERVED), texts),
    max_size=3,
    unique_by=lambda p: p[0].lower(),
).map(tuple)
uris = texts.map(lambda s: s.replace(" ", "").replace("\t", "")).filter(bool)
challenges = st.builds(
    Challenge,
    realm=texts,
    nonce=texts,
    opaque=st.none() | texts,
    algorithm=algorithms,
    qop=st.lists(tokens, max_size=3).map(tuple),
    stale=st.booleans(),
    domain=st.lists(uris).map(tuple),
    userhash=st.booleans(),
    params=extra_params,
)
credentials = st.builds(
    Credentials,
    username=texts,
    realm=texts,
    nonce=texts,
    uri=texts,
    response=texts,
    algorithm=algorithms,
    cnonce=st.none() | texts,
    opaque=st.none() | texts,
    qop=st.none() | tokens,
    nc=st.none() | st.integers(0, 0xFFFFFFFF),
    userhash=st.booleans(),
    params=extra_params,
)


@given(challenges)
def test_challenge_round_trip(challenge: Challenge) -> None:
    assert Challenge.parse(str(challenge)) == challenge


@given(credentials)
def test_credentials_round_trip(value: Credentials) -> None:
    assert Credentials.parse(str(value)) == value


@given(tokens, extra_params)
def test_generic_round_trip(scheme: str, params: tuple[tuple[str, str], ...]) -> None:
    generic = AuthValue(scheme, params)
    assert AuthValue.parse(str(generic)) == generic


def test_a_full_nonce_table_drops_its_oldest_quarter_at_once() -> None:
    """At the limit the table is not rebuilt for every new nonce (that cost a server at
    steady load its throughput): the oldest quarter goes stale in one pass."""
    server = DigestServer("example.com", SECRET, nonce_lifetime=300.0, max_nonces=8)
    challenges = [server.challenges(float(t))[0] for t in range(9)]
    for t, challenge in enumerate(challenges):
        assert server.verify(sign(challenge), method="REGISTER", now=t, lookup=ha1_lookup).ok
    assert server.tracked_nonces == 6  # 8 tracked, the 9th evicted issued <= t=2, then added
    for old in challenges[:3]:
        again = server.verify(sign(old, nc=2), method="REGISTER", now=9.0, lookup=ha1_lookup)
        assert again is VerifyResult.STALE
    assert server.verify(sign(challenges[3], nc=2), method="REGISTER", now=9.0,
                         lookup=ha1_lookup).ok  # fmt: skip


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-256-sess"])
def test_an_unknown_user_costs_the_same_digest_work_as_a_wrong_password(
    algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing must not tell who exists: verify computes the request-digest (against a dummy
    HA1 of the same length) before answering UNKNOWN_USER, as for a wrong password."""
    import hybridvoice.sip.auth as auth  # noqa: PLC0415

    computed: list[str] = []
    real = auth._digest

    def counting(algo: auth._Algorithm, ha1: str, **kw: object) -> str:
        computed.append(ha1)
        return real(algo, ha1, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(auth, "_digest", counting)
    server = DigestServer("example.com", SECRET, algorithms=(algorithm,))
    challenge = server.challenges(0.0)[0]
    for credentials, expected in (
        (sign(challenge, password="guess"), VerifyResult.BAD_RESPONSE),
        (sign(challenge, username="mallory"), VerifyResult.UNKNOWN_USER),
    ):
        computed.clear()
        assert server.verify(credentials, method="REGISTER", now=1.0, lookup=ha1_lookup) is expected
        assert len(computed) == 1
        assert len(computed[0]) == (32 if algorithm == "MD5" else 64)  # an HA1's length


def test_the_dummy_ha1_is_the_server_s_own() -> None:
    """The HA1 an unknown user is checked against belongs to the server (keyed by its
    secret, built with it), not to the module: two servers do not share it, one server keeps
    it, and an unknown user still costs one digest computation."""
    import hybridvoice.sip.auth as auth  # noqa: PLC0415

    seen: list[str] = []
    real = auth._digest

    def counting(algo: auth._Algorithm, ha1: str, **kw: object) -> str:
        seen.append(ha1)
        return real(algo, ha1, **kw)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_digest", counting)
        for server in (
            DigestServer("example.com", SECRET),
            DigestServer("example.com", SECRET),
            DigestServer("example.com", b"another secret of 32 bytes......"),
        ):
            challenge = server.challenges(0.0)[0]
            for _ in range(2):
                credentials = sign(challenge, username="mallory")
                result = server.verify(credentials, method="REGISTER", now=1.0, lookup=ha1_lookup)
                assert result is VerifyResult.UNKNOWN_USER
    assert len(seen) == 6 and all(len(ha1) == 64 for ha1 in seen)  # SHA-256 offered first
    assert seen[0] == seen[1] == seen[2] == seen[3] != seen[4] == seen[5]
