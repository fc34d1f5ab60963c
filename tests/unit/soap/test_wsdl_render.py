"""Tests for sts.soap.wsdl_render: policy embedding, addresses, the mex form, MSAL's mex parser and a network-free
zeep load."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree
from msal.mex import Mex
from requests.adapters import BaseAdapter
from zeep.transports import Transport
from zeep.wsdl.bindings import Soap11Binding, Soap12Binding

from sts import ns
from sts.app.published import port_addresses, published_path, scenario_endpoint
from sts.soap.wsdl_render import SCENARIO_POLICY_FILES, SP11, ScenarioPolicy, load_policy, render_mex, render_wsdl

REPO_ROOT = Path(__file__).resolve().parents[3]
POLICY_FILE = REPO_ROOT / "policies" / "scenario1-policy.xml"
FEB2005_POLICY_FILE = REPO_ROOT / "policies" / "scenario1-feb2005-policy.xml"
ORIGIN = "https://sts.example.test:8443"
SOAP11_ADDRESS = f"{ORIGIN}/services/wso2carbon-sts"
SOAP12_ADDRESS = f"{ORIGIN}/services/wso2carbon-sts.wso2carbon-stsHttpsSoap12Endpoint"
TRUST13_ALIAS = f"{ORIGIN}/adfs/services/trust/13/usernamemixed"
FEB2005_ALIAS = f"{ORIGIN}/adfs/services/trust/2005/usernamemixed"
ADDRESSES = {
    "wso2carbon-stsHttpsSoap11Endpoint": SOAP11_ADDRESS,
    "wso2carbon-stsHttpsSoap12Endpoint": SOAP12_ADDRESS,
    "UserNameWSTrustBinding_IWSTrust13Async": TRUST13_ALIAS,
    "UserNameWSTrustBinding_IWSTrustFeb2005Async": FEB2005_ALIAS,
}
PLACEHOLDER = "https://localhost:9443/"
WST_ACTIONS = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
OPERATIONS = {"Issue", "Renew", "Validate", "Cancel"}
NSMAP = {
    "wsdl": ns.WSDL,
    "wsp": ns.WSP,
    "wsu": ns.WSU,
    "sp": ns.SP,
    "sp11": SP11,
    "wsa10": ns.WSA,
    "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
    "soap12": "http://schemas.xmlsoap.org/wsdl/soap12/",
}


def _policy() -> ScenarioPolicy:
    return load_policy("UTOverTransport")


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@pytest.fixture(scope="module")
def rendered() -> bytes:
    return render_wsdl(_policy(), ADDRESSES)


@pytest.fixture(scope="module")
def definitions(rendered: bytes) -> etree._Element:
    return etree.fromstring(rendered, parser=_safe_parser())


class _NoNetworkAdapter(BaseAdapter):
    """A requests adapter that fails every request: the WSDL must load from the file alone."""

    def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
        raise AssertionError(f"network access attempted: {request.url}")

    def close(self) -> None:
        """Nothing to release."""


def _offline_client(path: Path) -> zeep.Client:
    session = requests.Session()
    session.mount("http://", _NoNetworkAdapter())
    session.mount("https://", _NoNetworkAdapter())
    settings = zeep.Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    # zeep ships py.typed but leaves these callables unannotated.
    transport = Transport(session=session)  # type: ignore[no-untyped-call]
    return zeep.Client(wsdl=str(path), settings=settings, transport=transport)  # type: ignore[no-untyped-call]


def test_output_is_compact_utf8_with_declaration(rendered: bytes) -> None:
    assert rendered.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<wsdl:definitions ")
    assert b"\n" not in rendered.split(b"\n", 1)[1]
    assert b"<!--" not in rendered


def test_policies_are_first_children_of_definitions(definitions: etree._Element) -> None:
    first, second = definitions[0], definitions[1]
    assert first.tag == second.tag == ns.qn(ns.WSP, "Policy")
    assert first.get(ns.qn(ns.WSU, "Id")) == "UTOverTransport"
    assert second.get(ns.qn(ns.WSU, "Id")) == "UTOverTransportFeb2005"
    assert definitions[2].tag == ns.qn(ns.WSDL, "types")
    assert len(definitions.findall("wsp:Policy", NSMAP)) == 2


@pytest.mark.parametrize("sp", ["sp", "sp11"])
def test_policy_requires_tls_timestamp_and_a_username_token(definitions: etree._Element, sp: str) -> None:
    policy = definitions[0] if sp == "sp" else definitions[1]
    (alternative,) = policy.findall("wsp:ExactlyOne/wsp:All", NSMAP)
    binding = alternative.find(f"{sp}:TransportBinding/wsp:Policy", NSMAP)
    assert binding is not None
    assert binding.find(f"{sp}:TransportToken/wsp:Policy/{sp}:HttpsToken", NSMAP) is not None
    assert binding.find(f"{sp}:AlgorithmSuite/wsp:Policy/{sp}:Basic256Sha256", NSMAP) is not None
    assert binding.find(f"{sp}:IncludeTimestamp", NSMAP) is not None
    # SP 1.2 §8.4 (as AD FS publishes it, where MSAL/ADAL look); SP 1.1 has only SignedSupportingTokens.
    supporting = "SignedEncryptedSupportingTokens" if sp == "sp" else "SignedSupportingTokens"
    (token,) = alternative.findall(f"{sp}:{supporting}/wsp:Policy/{sp}:UsernameToken", NSMAP)
    include = ns.SP if sp == "sp" else SP11
    assert token.get(f"{{{include}}}IncludeToken") == f"{include}/IncludeToken/AlwaysToRecipient"
    assert token.find(f"wsp:Policy/{sp}:WssUsernameToken10", NSMAP) is not None
    trust = "Trust13" if sp == "sp" else "Trust10"
    assert alternative.find(f"{sp}:{trust}/wsp:Policy/{sp}:MustSupportIssuedTokens", NSMAP) is not None


def test_relaxed_timestamp_rule_is_published_without_include_timestamp(definitions: etree._Element) -> None:
    relaxed = etree.fromstring(render_wsdl(_policy(), ADDRESSES, require_timestamp=False), parser=_safe_parser())
    assert relaxed.findall(".//sp:IncludeTimestamp", NSMAP) == relaxed.findall(".//sp11:IncludeTimestamp", NSMAP) == []
    assert len(definitions.findall(".//sp:IncludeTimestamp", NSMAP)) == 1
    assert len(definitions.findall(".//sp11:IncludeTimestamp", NSMAP)) == 1
    # Nothing else changes: the same policies and transport bindings are published.
    assert len(relaxed.findall("wsp:Policy/wsp:ExactlyOne/wsp:All/sp:TransportBinding", NSMAP)) == 1


def test_each_binding_references_the_policy_of_its_trust_version(definitions: etree._Element) -> None:
    bindings = {b.get("name"): b for b in definitions.findall("wsdl:binding", NSMAP)}
    assert set(bindings) == {
        "wso2carbon-stsSoap11Binding",
        "wso2carbon-stsSoap12Binding",
        "wso2carbon-stsSoap12Feb2005Binding",
    }
    for name, binding in bindings.items():
        assert binding[0].tag == ns.qn(ns.WSP, "PolicyReference")
        expected = "#UTOverTransportFeb2005" if "Feb2005" in name else "#UTOverTransport"
        assert binding[0].get("URI") == expected


def test_addresses_are_replaced(rendered: bytes, definitions: etree._Element) -> None:
    assert PLACEHOLDER.encode() not in rendered
    ports = definitions.findall("wsdl:service/wsdl:port", NSMAP)
    locations = {
        p.get("name"): [a.get("location") for a in p if etree.QName(a).localname == "address"] for p in ports
    }
    assert locations == {name: [address] for name, address in ADDRESSES.items()}
    # Every port also carries its address as a WS-Addressing EPR (AD FS's form, read by MSAL and ADAL).
    for port in ports:
        assert [a.text for a in port.findall("wsa10:EndpointReference/wsa10:Address", NSMAP)] == [
            ADDRESSES[str(port.get("name"))]
        ]


def test_port_addresses_follow_the_public_url() -> None:
    assert port_addresses(SOAP11_ADDRESS) == ADDRESSES
    mounted = port_addresses("https://proxy.example.test/sts/services/wso2carbon-sts")
    assert mounted["UserNameWSTrustBinding_IWSTrust13Async"] == (
        "https://proxy.example.test/sts/adfs/services/trust/13/usernamemixed"
    )
    other = port_addresses("https://proxy.example.test/trust")
    assert other["wso2carbon-stsHttpsSoap11Endpoint"] == "https://proxy.example.test/trust"
    assert other["UserNameWSTrustBinding_IWSTrustFeb2005Async"] == (
        "https://proxy.example.test/adfs/services/trust/2005/usernamemixed"
    )


@pytest.mark.parametrize(
    "url",
    ["https://localhost:8443/services/wso2carbon-sts", "https://proxy.example.test/sts/services/wso2carbon-sts",
     "https://proxy.example.test/trust"],
)
def test_published_paths_are_the_paths_of_the_scenario_ports(url: str) -> None:
    """What a signed wsa:To may name besides the path the request reached: the path of its port in the WSDL."""
    from urllib.parse import urlsplit

    ports = scenario_endpoint("certificatemixed", url).ports
    published = {urlsplit(address).path for _, address in ports.values()}
    served = {"/services/wso2carbon-sts/certificatemixed", "/adfs/services/trust/13/certificatemixed"}
    assert {published_path(url, path) for path in served} == published


def test_addresses_must_name_every_port() -> None:
    partial = {k: v for k, v in ADDRESSES.items() if "Feb2005" not in k}
    with pytest.raises(ValueError, match="need an address each"):
        render_wsdl(_policy(), partial)
    with pytest.raises(ValueError, match="need an address each"):
        render_wsdl(_policy(), {**ADDRESSES, "extra": SOAP11_ADDRESS})


def test_policy_reference_follows_the_policy_id() -> None:
    policy = _policy()
    renamed = ScenarioPolicy(policy.trust13.replace(b'wsu:Id="UTOverTransport"', b'wsu:Id="Other"'), policy.feb2005)
    root = etree.fromstring(render_wsdl(renamed, ADDRESSES), parser=_safe_parser())
    uris = [ref.get("URI") for ref in root.findall("wsdl:binding/wsp:PolicyReference", NSMAP)]
    assert uris == ["#Other", "#Other", "#UTOverTransportFeb2005"]


@pytest.mark.parametrize(
    "policy",
    [
        b'<wsp:Policy xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy"/>',
        b'<wsp:Policy xmlns:wsp="http://www.w3.org/ns/ws-policy" xmlns:wsu="' + ns.WSU.encode() + b'" wsu:Id="x"/>',
    ],
    ids=["no-wsu-id", "w3c-policy-namespace"],
)
def test_unusable_policy_is_rejected(policy: bytes) -> None:
    with pytest.raises(ValueError, match="policy root"):
        render_wsdl(ScenarioPolicy(policy, _policy().feb2005), ADDRESSES)
    with pytest.raises(ValueError, match="policy root"):
        render_wsdl(ScenarioPolicy(_policy().trust13, policy), ADDRESSES)


def test_zeep_loads_rendered_wsdl_offline(rendered: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sts.wsdl"
    path.write_bytes(rendered)
    client = _offline_client(path)

    service = client.wsdl.services["wso2carbon-sts"]
    assert set(service.ports) == set(ADDRESSES)
    for name, address in ADDRESSES.items():
        port = service.ports[name]
        assert port.binding_options["address"] == address
        assert isinstance(port.binding, Soap11Binding if name.endswith("Soap11Endpoint") else Soap12Binding)
        trust_ns = ns.WST05 if "Feb2005" in name else ns.WST
        assert set(port.binding.all()) == OPERATIONS
        for operation_name in OPERATIONS:
            operation = port.binding.get(operation_name)
            assert operation.soapaction == f"{trust_ns}/RST/{operation_name}"
            assert operation.input.body.qname == etree.QName(trust_ns, "RequestSecurityToken")
            response = "RequestSecurityTokenResponse"
            if operation_name == "Issue" and trust_ns == ns.WST:
                response = "RequestSecurityTokenResponseCollection"  # WS-Trust 1.3 §4.3; Feb 2005: a bare RSTR
            assert operation.output.body.qname == etree.QName(trust_ns, response)


def test_mex_is_the_wsdl_with_its_soap12_bindings_only(rendered: bytes, tmp_path: Path) -> None:
    mex = render_mex(rendered)
    root = etree.fromstring(mex, parser=_safe_parser())
    assert root.tag == ns.qn(ns.WSDL, "definitions")
    bindings = root.findall("wsdl:binding", NSMAP)
    assert {b.get("name") for b in bindings} == {"wso2carbon-stsSoap12Binding", "wso2carbon-stsSoap12Feb2005Binding"}
    assert all(b.find("soap12:binding", NSMAP) is not None for b in bindings)
    assert len(root.findall("wsp:Policy", NSMAP)) == 2
    path = tmp_path / "mex.wsdl"
    path.write_bytes(mex)
    service = _offline_client(path).wsdl.services["wso2carbon-sts"]  # still complete WSDL
    assert set(service.ports) == set(ADDRESSES) - {"wso2carbon-stsHttpsSoap11Endpoint"}


def test_msal_mex_parser_finds_the_trust13_and_feb2005_endpoints(rendered: bytes) -> None:
    # Microsoft's own parser (MSAL Python), on the document as MSAL fetches it.
    mex = Mex(render_mex(rendered).decode("utf-8"))
    endpoints = mex._get_endpoints(mex._get_bindings(), mex._get_username_password_policy_ids())
    assert endpoints == [
        {"address": SOAP12_ADDRESS, "action": Mex.ACTION_13},
        {"address": TRUST13_ALIAS, "action": Mex.ACTION_13},
        {"address": FEB2005_ALIAS, "action": Mex.ACTION_2005},
    ]
    assert mex.get_wstrust_username_password_endpoint() == {"address": SOAP12_ADDRESS, "action": Mex.ACTION_13}


@pytest.mark.parametrize(
    ("port", "envelope_ns"),
    [("wso2carbon-stsHttpsSoap11Endpoint", ns.S11), ("wso2carbon-stsHttpsSoap12Endpoint", ns.S12)],
)
def test_zeep_builds_an_issue_request_offline(rendered: bytes, tmp_path: Path, port: str, envelope_ns: str) -> None:
    path = tmp_path / "sts.wsdl"
    path.write_bytes(rendered)
    client = _offline_client(path)
    proxy = client.bind("wso2carbon-sts", port)
    request_type = etree.Element(ns.qn(ns.WST, "RequestType"))
    request_type.text = f"{WST_ACTIONS}/Issue"

    envelope = client.create_message(  # type: ignore[no-untyped-call]
        proxy, "Issue", _value_1=[request_type], Context="ctx-1"
    )

    body = envelope.find(ns.qn(envelope_ns, "Body"))
    assert body is not None
    rst = body[0]
    assert rst.tag == ns.qn(ns.WST, "RequestSecurityToken")
    assert rst.get("Context") == "ctx-1"
    assert rst.findtext(ns.qn(ns.WST, "RequestType")) == f"{WST_ACTIONS}/Issue"


def test_scenario_files_exist_in_policies_directory() -> None:
    for file_names in SCENARIO_POLICY_FILES.values():
        for file_name in file_names:
            assert (REPO_ROOT / "policies" / file_name).is_file()


def test_load_policy_unknown_scenario_raises_key_error() -> None:
    with pytest.raises(KeyError, match="SigOnly"):
        load_policy("SigOnly")


def test_load_policy_reads_packaged_files() -> None:
    assert load_policy("UTOverTransport") == ScenarioPolicy(POLICY_FILE.read_bytes(), FEB2005_POLICY_FILE.read_bytes())
