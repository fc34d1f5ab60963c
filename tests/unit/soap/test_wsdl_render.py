"""Tests for sts.soap.wsdl_render: policy embedding, addresses, and a network-free zeep load."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree
from requests.adapters import BaseAdapter
from zeep.transports import Transport
from zeep.wsdl.bindings import Soap11Binding, Soap12Binding

from sts import ns
from sts.soap.wsdl_render import SCENARIO_POLICY_FILES, load_policy, render_wsdl

REPO_ROOT = Path(__file__).resolve().parents[3]
POLICY_FILE = REPO_ROOT / "policies" / "scenario1-policy.xml"
SOAP11_ADDRESS = "https://sts.example.test:8443/services/wso2carbon-sts"
SOAP12_ADDRESS = "https://sts.example.test:8443/services/wso2carbon-sts.wso2carbon-stsHttpsSoap12Endpoint"
PLACEHOLDER = "https://localhost:9443/services/wso2carbon-sts"
WST_ACTIONS = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
OPERATIONS = {"Issue", "Renew", "Validate", "Cancel"}
NSMAP = {
    "wsdl": ns.WSDL,
    "wsp": ns.WSP,
    "wsu": ns.WSU,
    "sp": ns.SP,
    "soap": "http://schemas.xmlsoap.org/wsdl/soap/",
    "soap12": "http://schemas.xmlsoap.org/wsdl/soap12/",
}


def _policy() -> bytes:
    return load_policy("UTOverTransport")


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@pytest.fixture(scope="module")
def rendered() -> bytes:
    return render_wsdl(_policy(), SOAP11_ADDRESS, SOAP12_ADDRESS)


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


def test_policy_is_first_child_of_definitions(definitions: etree._Element) -> None:
    first = definitions[0]
    assert first.tag == ns.qn(ns.WSP, "Policy")
    assert first.get(ns.qn(ns.WSU, "Id")) == "UTOverTransport"
    assert definitions[1].tag == ns.qn(ns.WSDL, "types")
    assert len(definitions.findall("wsp:Policy", NSMAP)) == 1
    assert first.find(".//sp:TransportBinding//sp:HttpsToken", NSMAP) is not None
    assert first.find(".//sp:AlgorithmSuite/wsp:Policy/sp:Basic256Sha256", NSMAP) is not None
    token = first.find(".//sp:SignedSupportingTokens/wsp:Policy/sp:UsernameToken", NSMAP)
    assert token is not None
    assert token.get(ns.qn(ns.SP, "IncludeToken")) == f"{ns.SP}/IncludeToken/AlwaysToRecipient"
    assert token.find("wsp:Policy/sp:WssUsernameToken10", NSMAP) is not None
    assert first.find(".//sp:Trust13/wsp:Policy/sp:MustSupportIssuedTokens", NSMAP) is not None


def test_both_bindings_reference_the_policy_first(definitions: etree._Element) -> None:
    bindings = definitions.findall("wsdl:binding", NSMAP)
    assert len(bindings) == 2
    for binding in bindings:
        assert binding[0].tag == ns.qn(ns.WSP, "PolicyReference")
        assert binding[0].get("URI") == "#UTOverTransport"


def test_addresses_are_replaced(rendered: bytes, definitions: etree._Element) -> None:
    assert PLACEHOLDER.encode() not in rendered
    soap11 = definitions.findall("wsdl:service/wsdl:port/soap:address", NSMAP)
    soap12 = definitions.findall("wsdl:service/wsdl:port/soap12:address", NSMAP)
    assert [a.get("location") for a in soap11] == [SOAP11_ADDRESS]
    assert [a.get("location") for a in soap12] == [SOAP12_ADDRESS]


def test_policy_reference_follows_the_policy_id() -> None:
    policy = _policy().replace(b'wsu:Id="UTOverTransport"', b'wsu:Id="OtherScenario"')
    root = etree.fromstring(render_wsdl(policy, SOAP11_ADDRESS, SOAP12_ADDRESS), parser=_safe_parser())
    uris = [ref.get("URI") for ref in root.findall("wsdl:binding/wsp:PolicyReference", NSMAP)]
    assert uris == ["#OtherScenario", "#OtherScenario"]


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
        render_wsdl(policy, SOAP11_ADDRESS, SOAP12_ADDRESS)


def test_zeep_loads_rendered_wsdl_offline(rendered: bytes, tmp_path: Path) -> None:
    path = tmp_path / "sts.wsdl"
    path.write_bytes(rendered)
    client = _offline_client(path)

    service = client.wsdl.services["wso2carbon-sts"]
    assert set(service.ports) == {"wso2carbon-stsHttpsSoap11Endpoint", "wso2carbon-stsHttpsSoap12Endpoint"}
    soap11 = service.ports["wso2carbon-stsHttpsSoap11Endpoint"]
    soap12 = service.ports["wso2carbon-stsHttpsSoap12Endpoint"]
    assert soap11.binding_options["address"] == SOAP11_ADDRESS
    assert soap12.binding_options["address"] == SOAP12_ADDRESS
    assert isinstance(soap11.binding, Soap11Binding)
    assert isinstance(soap12.binding, Soap12Binding)

    for port in (soap11, soap12):
        assert set(port.binding.all()) == OPERATIONS
        for name in OPERATIONS:
            operation = port.binding.get(name)
            assert operation.soapaction == f"{WST_ACTIONS}/RST/{name}"
            assert operation.input.body.qname == etree.QName(ns.WST, "RequestSecurityToken")
            response = "RequestSecurityTokenResponseCollection" if name == "Issue" else "RequestSecurityTokenResponse"
            assert operation.output.body.qname == etree.QName(ns.WST, response)


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
    for file_name in SCENARIO_POLICY_FILES.values():
        assert (REPO_ROOT / "policies" / file_name).is_file()


def test_load_policy_unknown_scenario_raises_key_error() -> None:
    with pytest.raises(KeyError, match="SigOnly"):
        load_policy("SigOnly")


def test_load_policy_reads_packaged_file() -> None:
    assert load_policy("UTOverTransport") == POLICY_FILE.read_bytes()
