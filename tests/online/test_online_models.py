"""Tenant models: validation with clear messages, canonical forms, secrets, JSON round trips."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hybridvoice.online.models import (
    Appliance,
    DialPlanRule,
    HybridConfig,
    NetworkConfig,
    Site,
    User,
    canonical_aor,
    replicated,
)


def _error(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


# --- users ---------------------------------------------------------------------------------------


def test_user_canonical_forms() -> None:
    user = User(
        sip_uri="sip:alice@Contoso.COM;transport=tls",
        line_uri="tel:+46 8-123 456 78",
        enterprise_voice_enabled=True,
    )
    assert user.sip_uri == "sip:alice@contoso.com"
    assert user.line_uri == "tel:+46812345678"
    assert user.e164 == "+46812345678"
    assert user.username == "alice"
    assert user.domain == "contoso.com"
    assert user.international_calls_allowed is True
    assert User(sip_uri="bob@contoso.com").sip_uri == "sip:bob@contoso.com"
    assert User(sip_uri="sips:bob@contoso.com:5061").sip_uri == "sip:bob@contoso.com"
    assert User(sip_uri="sip:carol@contoso.com", line_uri="").line_uri is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sip_uri": "alice"}, "not a SIP URI"),
        ({"sip_uri": "sip:contoso.com"}, "with a user part"),
        ({"sip_uri": "tel:+4681234"}, "with a user part"),
        ({"sip_uri": "sip:a@bad host"}, "not a SIP URI"),
        ({"sip_uri": "sip:a@c.com", "line_uri": "+46812345678"}, "must be a tel: URI"),
        ({"sip_uri": "sip:a@c.com", "line_uri": "tel:46812345678"}, "not an E.164 number"),
        ({"sip_uri": "sip:a@c.com", "line_uri": "tel:+0123"}, "not an E.164 number"),
        ({"sip_uri": "sip:a@c.com", "line_uri": "tel:+1234567890123456"}, "at most 15 digits"),
        ({"sip_uri": "sip:a@c.com", "line_uri": "tel:+4681;ext=1"}, "not supported"),
        ({"sip_uri": "sip:a@c.com", "hybrid_pstn_site": "bad/site"}, "site name"),
        ({"sip_uri": "sip:a@c.com", "ha1_md5": "zz"}, "32 hex digits"),
        ({"sip_uri": "sip:a@c.com", "ha1_md5": "0" * 32}, "realm"),
        ({"sip_uri": "sip:a@c.com", "password": "secret"}, "Extra inputs are not permitted"),
    ],
)
def test_user_validation_errors(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        User.model_validate(fields)
    assert message in _error(exc)


def test_user_is_frozen() -> None:
    user = User(sip_uri="sip:a@c.com")
    with pytest.raises(ValidationError):
        user.display_name = "x"


def test_with_password_keeps_only_ha1s() -> None:
    user = User(sip_uri="sip:alice@contoso.com").with_password("s3cret", "contoso.com")
    assert user.ha1_md5 == hashlib.md5(b"alice:contoso.com:s3cret").hexdigest()
    assert user.ha1_sha256 == hashlib.sha256(b"alice:contoso.com:s3cret").hexdigest()
    assert user.ha1_realm == "contoso.com"
    assert user.has_password
    dumped = json.dumps(user.model_dump(mode="json"))
    assert "s3cret" not in dumped
    assert "s3cret" not in repr(user)
    assert user.ha1_md5 not in repr(user)
    value = replicated(user)
    assert not {"ha1_md5", "ha1_sha256", "ha1_realm"} & set(value)
    assert User.model_validate(value) == user.without_password()
    with pytest.raises(ValueError, match="must not be empty"):
        user.with_password("", "contoso.com")


# --- sites, configuration, appliances ------------------------------------------------------------


def test_site_and_windows() -> None:
    site = Site(
        name="Amsterdam",
        edge_fqdn="AP.Contoso.com.",
        country_code="+31",
        update_time_windows=("Sunday night", "Sunday night", "W2"),
    )
    assert site.edge_fqdn == "ap.contoso.com"
    assert site.country_code == "31"
    assert site.update_time_windows == ("Sunday night", "W2")
    assert site.enable_auto_update
    for fields, message in [
        ({"name": "", "edge_fqdn": "ap.c.com"}, "site name"),
        ({"name": "S", "edge_fqdn": "-bad-.com"}, "edge FQDN"),
        ({"name": "S", "edge_fqdn": "ap.c.com", "country_code": "046"}, "calling code"),
        ({"name": "S", "edge_fqdn": "a.c", "update_time_windows": ["-x"]}, "update window name"),
    ]:
        with pytest.raises(ValidationError, match=message):
            Site.model_validate(fields)


def test_hybrid_and_network_config() -> None:
    cfg = HybridConfig(
        hybrid_config_service_internal_url="https://hv.contoso.com/hybridconfig/hybridconfigservice.svc",
        peer_destination="Pool.Contoso.com:5061",
    )
    assert cfg.peer_destination == "pool.contoso.com:5061"
    assert HybridConfig(peer_destination="sip:pool.contoso.com;transport=tls").peer_destination
    assert HybridConfig().use_onprem_dialplan is False
    with pytest.raises(ValidationError, match=r"http\(s\)://host/path"):
        HybridConfig(hybrid_config_service_internal_url="ftp://x")
    with pytest.raises(ValidationError, match="port must be"):
        HybridConfig(peer_destination="pool.contoso.com:99999")
    net = NetworkConfig(media_bypass_enabled=True, internal_subnets=("10.1.2.3/16", "fd00::/8"))
    assert net.internal_subnets == ("10.1.0.0/16", "fd00::/8")
    assert net.always_bypass is True
    with pytest.raises(ValidationError, match=r"not like 10\.0\.0\.0/16"):
        NetworkConfig(internal_subnets=("10.0.0/99",))


def test_appliance_fields() -> None:
    app = Appliance(
        name="ams-1",
        site="Amsterdam",
        mediation_fqdn="med1.contoso.local",
        edge_fqdn="ap.contoso.com",
        edge_sip_host="192.0.2.10",
        edge_sip_transport="tcp",  # type: ignore[arg-type]
    )
    assert app.edge_sip_transport == "TCP"
    assert app.edge_sip_port == 5061
    assert app.status == "online"
    with pytest.raises(ValidationError, match="status"):
        Appliance.model_validate({**app.model_dump(), "status": "broken"})
    with pytest.raises(ValidationError, match="edge_sip_port"):
        Appliance.model_validate({**app.model_dump(), "edge_sip_port": 0})


# --- dial plan rules -----------------------------------------------------------------------------


def test_dialplan_rule_validation_and_apply() -> None:
    rule = DialPlanRule(name="SE-national", pattern=r"0(\d{6,12})", translation="+46$1")
    assert rule.apply("0812345678") == "+46812345678"
    assert rule.apply("812345678") is None
    backslash = DialPlanRule(name="x", pattern=r"00(\d+)", translation=r"+\1")
    assert backslash.apply("0044123") == "+44123"
    with pytest.raises(ValidationError, match="is not a regex"):
        DialPlanRule(name="bad", pattern="(", translation="+1")
    with pytest.raises(ValidationError, match="uses group 2"):
        DialPlanRule(name="bad", pattern=r"(\d+)", translation="+$2")


# --- JSON round trips ----------------------------------------------------------------------------

_user_part = st.from_regex(r"[a-z][a-z0-9._-]{0,15}", fullmatch=True)
_host = st.from_regex(r"[a-z][a-z0-9]{0,10}\.(com|net|se)", fullmatch=True)
_number = st.from_regex(r"\+[1-9][0-9]{4,13}", fullmatch=True)
_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=20
)


@st.composite
def users(draw: st.DrawFn) -> User:
    return User(
        sip_uri=f"sip:{draw(_user_part)}@{draw(_host)}",
        display_name=draw(_text),
        enterprise_voice_enabled=draw(st.booleans()),
        line_uri=draw(st.none() | _number.map(lambda n: "tel:" + n)),
        hybrid_pstn_site=draw(st.none() | _name),
        international_calls_allowed=draw(st.booleans()),
    )


@given(users(), st.text(min_size=1, max_size=10))
def test_user_json_round_trip(user: User, password: str) -> None:
    assert User.model_validate(json.loads(json.dumps(replicated(user)))) == user
    secret = user.with_password(password, "contoso.com")
    assert User.model_validate_json(secret.model_dump_json()) == secret
    assert User.model_validate(replicated(secret)) == user


@given(
    _name,
    _host,
    st.none() | st.from_regex(r"[1-9][0-9]{0,2}", fullmatch=True),
    st.lists(_name, max_size=3, unique=True),
    st.booleans(),
)
def test_site_json_round_trip(
    name: str, edge: str, cc: str | None, windows: list[str], auto: bool
) -> None:
    site = Site(name=name, edge_fqdn=edge, country_code=cc, update_time_windows=tuple(windows),
                enable_auto_update=auto)  # fmt: skip
    assert Site.model_validate(json.loads(json.dumps(replicated(site)))) == site


@given(
    _name,
    _name,
    _host,
    st.integers(1, 65535),
    st.sampled_from(["TLS", "TCP", "UDP"]),
    st.sampled_from(["online", "offline", "maintenance"]),
    st.floats(0, 2e9),
)
def test_appliance_json_round_trip(
    name: str, site: str, host: str, port: int, transport: str, status: str, beat: float
) -> None:
    app = Appliance.model_validate(
        {
            "name": name,
            "site": site,
            "mediation_fqdn": "med." + host,
            "edge_fqdn": "ap." + host,
            "edge_sip_host": host,
            "edge_sip_port": port,
            "edge_sip_transport": transport,
            "status": status,
            "last_heartbeat": beat,
        }
    )
    assert Appliance.model_validate(json.loads(json.dumps(replicated(app)))) == app


@given(_name, st.integers(-100, 100), st.sampled_from([r"0(\d+)", r"\+?(\d+)", r".*"]))
def test_dialplan_and_config_json_round_trip(name: str, priority: int, pattern: str) -> None:
    rule = DialPlanRule(name=name, pattern=pattern, translation="+46", priority=priority)
    assert DialPlanRule.model_validate(json.loads(json.dumps(replicated(rule)))) == rule
    net = NetworkConfig(internal_subnets=("10.0.0.0/8",), media_bypass_enabled=True)
    assert NetworkConfig.model_validate(json.loads(json.dumps(replicated(net)))) == net
    hybrid = HybridConfig(peer_destination="pool.contoso.com")
    assert HybridConfig.model_validate(json.loads(json.dumps(replicated(hybrid)))) == hybrid


def test_canonical_aor() -> None:
    assert canonical_aor("SIP:Alice@EXAMPLE.com:5060;transport=udp") == "sip:Alice@example.com"
