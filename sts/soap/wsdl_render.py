"""Render the static WSDL of the STS with its WS-SecurityPolicy and endpoint addresses, and its mex form.

The template (``sts/soap/wsdl/sts.wsdl``) and the policy files (``policies/``, packaged as ``sts.policies``) are
our own files, not request input, so they do not go through :func:`sts.xmlutil.parse_untrusted`; they are still
parsed without entity expansion, DTD loading or network access. Rendering happens once at startup; the results
are served as-is on ``GET <endpoint>?wsdl`` and ``GET /mex`` (README, "Running in production", **Endpoints**).

What is published is what is enforced: the policies are rendered for the endpoint's Timestamp rule, so a
relaxed rule is published relaxed (WS-SecurityPolicy 1.2 §7.3 ``sp:IncludeTimestamp``).
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from itertools import takewhile
from pathlib import Path
from types import MappingProxyType
from typing import Final

from lxml import etree

from sts import ns

__all__ = [
    "SCENARIO_POLICY_FILES",
    "SINGLE_POLICY_FILES",
    "ScenarioEndpoint",
    "ScenarioPolicy",
    "load_scenario_policy",
    "load_policy",
    "render_mex",
    "render_wsdl",
]

SCENARIO_POLICY_FILES: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "UTOverTransport": ("scenario1-policy.xml", "scenario1-feb2005-policy.xml"),
    }
)
"""WSO2 security scenario name → its policy files in ``policies/`` (WSO2's own ``scenarioN-policy.xml`` naming):
WS-SecurityPolicy 1.2 for the WS-Trust 1.3 bindings, then WS-SecurityPolicy 1.1 for the Feb 2005 binding."""

SINGLE_POLICY_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "SigOnly": "scenario2-policy.xml",
        "SigEncr": "scenario5-policy.xml",
        "SgnEncrUsername": "scenario8-policy.xml",
        "certificatemixed": "certificatemixed-policy.xml",
        "IssuedTokenOverTransport": "issuedtoken-policy.xml",
        "certificatetransport": "certificatetransport-policy.xml",
    }
)
"""Scenarios served on an endpoint of their own (WS-Trust 1.3 only) → their one policy file."""

_WSDL_PACKAGE: Final = "sts.soap.wsdl"
_WSDL_TEMPLATE: Final = "sts.wsdl"
_POLICY_PACKAGE: Final = "sts.policies"

_WSDL_SOAP11: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
_WSDL_SOAP12: Final = "http://schemas.xmlsoap.org/wsdl/soap12/"
SP11: Final = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy"

_DOCUMENTATION: Final = ns.qn(ns.WSDL, "documentation")
_POLICY: Final = ns.qn(ns.WSP, "Policy")
_WSU_ID: Final = ns.qn(ns.WSU, "Id")
_INCLUDE_TIMESTAMP: Final = frozenset({ns.qn(ns.SP, "IncludeTimestamp"), ns.qn(SP11, "IncludeTimestamp")})
# The portType a binding implements names the WS-Trust version, and so the policy it references.
_TRUST13_PORT_TYPE: Final = "SecurityTokenService"
_FEB2005_PORT_TYPE: Final = "SecurityTokenServiceFeb2005"
_NSMAP: Final[Mapping[str, str]] = MappingProxyType(
    {
        "wsdl": ns.WSDL,
        "wsp": ns.WSP,
        "wsa10": ns.WSA,
        "soap": _WSDL_SOAP11,
        "soap12": _WSDL_SOAP12,
    }
)


@dataclass(frozen=True, slots=True)
class ScenarioPolicy:
    """The policy documents of one security scenario, one per WS-Trust version the STS speaks."""

    trust13: bytes  # WS-SecurityPolicy 1.2 (…/ws-sx/ws-securitypolicy/200702)
    feb2005: bytes  # WS-SecurityPolicy 1.1 (…/ws/2005/07/securitypolicy)


def load_policy(name: str) -> ScenarioPolicy:
    """Return the WS-SecurityPolicy files of the WSO2 security scenario ``name`` (e.g. ``"UTOverTransport"``).

    Raises :class:`KeyError` for a scenario this STS has no policy files for.
    """
    try:
        trust13, feb2005 = SCENARIO_POLICY_FILES[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIO_POLICY_FILES))
        raise KeyError(f"unknown security scenario {name!r} (known: {known})") from None
    files = _policy_folder()
    return ScenarioPolicy(files.joinpath(trust13).read_bytes(), files.joinpath(feb2005).read_bytes())


@dataclass(frozen=True, slots=True)
class ScenarioEndpoint:
    """A scenario on its own endpoint: its policy (``wsu:Id`` = the scenario name) and its WSDL ports.

    ``ports`` maps each port name to ``("soap11" | "soap12", URL)``.
    """

    name: str
    policy: bytes
    ports: Mapping[str, tuple[str, str]]


def load_scenario_policy(name: str) -> bytes:
    """The policy file of a scenario served on its own endpoint (KeyError for an unknown one)."""
    return _policy_folder().joinpath(SINGLE_POLICY_FILES[name]).read_bytes()


def _policy_folder() -> Traversable:
    """The policy files: ``sts.policies`` when installed (wheel or editable), else the checkout's ``policies/``.

    Code imported straight from a source checkout (tests, ``python -m sts`` beside a non-editable install) has no
    ``sts.policies`` package: setup.py maps the top-level folder onto that name only when installing.
    """
    try:
        return importlib.resources.files(_POLICY_PACKAGE)
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "policies"
        if not (checkout / "__init__.py").is_file():
            raise
        return checkout


def render_wsdl(
    policy: ScenarioPolicy,
    addresses: Mapping[str, str],
    *,
    require_timestamp: bool = True,
    extra: Sequence[ScenarioEndpoint] = (),
    include_base: bool = True,
) -> bytes:
    """Return the STS WSDL with ``policy`` embedded and every port's address filled in.

    Each policy document must have a ``wsp:Policy`` (WS-Policy 2004/09) root carrying a ``wsu:Id``. Copies become
    the first children of ``wsdl:definitions`` (WS-PolicyAttachment); each binding's ``wsp:PolicyReference`` is
    pointed at the policy of its WS-Trust version. Without ``require_timestamp`` every ``sp:IncludeTimestamp``
    is dropped, so the published policy never asks for more than the endpoint enforces.

    ``addresses`` maps each ``wsdl:port`` name of the template to its URL, written both as ``soap:address`` /
    ``soap12:address`` and as the port's ``wsa10:EndpointReference/wsa10:Address`` (where AD FS publishes it
    and MSAL/ADAL look for it). The result is compact UTF-8 with an XML declaration and no comments.

    Each of ``extra`` adds its policy, a SOAP 1.1 and a SOAP 1.2 binding (copies of the template's WS-Trust 1.3
    bindings referencing that policy) and its ports; without ``include_base`` the UsernameToken scenario's
    policies, bindings and ports are left out (it is not served).

    Raises :class:`ValueError` for a policy without that root or Id, or addresses that do not name exactly the
    template's ports, and :class:`lxml.etree.XMLSyntaxError` for bytes that are not well-formed XML.
    """
    definitions = etree.fromstring(_template(), parser=_parser())
    trust13 = _policy_root(policy.trust13, require_timestamp)
    feb2005 = _policy_root(policy.feb2005, require_timestamp)
    ids = {_TRUST13_PORT_TYPE: trust13.get(_WSU_ID), _FEB2005_PORT_TYPE: feb2005.get(_WSU_ID)}
    for binding in _find(definitions, "wsdl:binding", minimum=2):
        port_type = str(binding.get("type", "")).rpartition(":")[2]
        if port_type not in ids:
            raise ValueError(f"WSDL template: binding {binding.get('name')} implements unknown {port_type}")
        _find_one(binding, "wsp:PolicyReference").set("URI", f"#{ids[port_type]}")
    _set_addresses(definitions, addresses)
    base_bindings = _find(definitions, "wsdl:binding", minimum=2)
    base_ports = _find(definitions, "wsdl:service/wsdl:port", minimum=1)
    policies = [trust13, feb2005] if include_base else []
    for endpoint in extra:
        policies.append(_policy_root(endpoint.policy, require_timestamp))
        _add_endpoint(definitions, endpoint, policies[-1].get(_WSU_ID) or endpoint.name)
    if not include_base:
        for element in [*base_bindings, *base_ports]:
            parent = element.getparent()
            if parent is not None:
                parent.remove(element)

    # wsdl:documentation, when present, must stay the first child (WSDL 1.1 schema).
    position = sum(1 for _ in takewhile(lambda child: child.tag == _DOCUMENTATION, definitions))
    for policy_root in reversed(policies):
        definitions.insert(position, policy_root)
    return etree.tostring(definitions, encoding="UTF-8", xml_declaration=True)


def _add_endpoint(definitions: etree._Element, endpoint: ScenarioEndpoint, policy_id: str) -> None:
    """Bindings (copies of the WS-Trust 1.3 ones) referencing the endpoint's policy, and its ports."""
    names = {}
    for kind, template_name in (("soap11", "wso2carbon-stsSoap11Binding"), ("soap12", "wso2carbon-stsSoap12Binding")):
        template = _find_one(definitions, f"wsdl:binding[@name='{template_name}']")
        binding = copy.deepcopy(template)
        names[kind] = f"{endpoint.name}{'Soap11' if kind == 'soap11' else 'Soap12'}Binding"
        binding.set("name", names[kind])
        _find_one(binding, "wsp:PolicyReference").set("URI", f"#{policy_id}")
        definitions.insert(definitions.index(template), binding)  # bindings are children of definitions
    service = _find_one(definitions, "wsdl:service")
    for port_name, (kind, url) in endpoint.ports.items():
        port = etree.SubElement(service, ns.qn(ns.WSDL, "port"), name=port_name, binding=f"tns:{names[kind]}")
        address_ns = _WSDL_SOAP11 if kind == "soap11" else _WSDL_SOAP12
        etree.SubElement(port, f"{{{address_ns}}}address", location=url)
        reference = etree.SubElement(port, ns.qn(ns.WSA, "EndpointReference"))
        etree.SubElement(reference, ns.qn(ns.WSA, "Address")).text = url


def render_mex(wsdl: bytes) -> bytes:
    """The document served on ``GET /mex``: the WSDL with only its SOAP 1.2 bindings and ports, as AD FS serves it.

    A bare ``wsdl:definitions``, not a WS-MetadataExchange ``Metadata`` wrapper: MSAL and ADAL read the bindings
    as children of the document root and expect a ``soap12:binding`` in every binding (a SOAP 1.1 binding makes
    MSAL Python's mex parser fail). Policies, portTypes and messages stay, so the document is complete WSDL;
    SOAP 1.1 clients use ``?wsdl``.
    """
    definitions = etree.fromstring(wsdl, parser=_parser())
    dropped: set[str] = set()
    for binding in _find(definitions, "wsdl:binding", minimum=1):
        if binding.find("soap12:binding", namespaces=dict(_NSMAP)) is None:
            dropped.add(str(binding.get("name")))
            definitions.remove(binding)
    for service in definitions.findall("wsdl:service", namespaces=dict(_NSMAP)):
        for port in service.findall("wsdl:port", namespaces=dict(_NSMAP)):
            if str(port.get("binding", "")).rpartition(":")[2] in dropped:
                service.remove(port)
    return etree.tostring(definitions, encoding="UTF-8", xml_declaration=True)


def _policy_root(policy: bytes, require_timestamp: bool) -> etree._Element:
    root = etree.fromstring(policy, parser=_parser())
    if root.tag != _POLICY:
        raise ValueError(f"policy root must be {_POLICY}, not {root.tag}")
    if not root.get(_WSU_ID):
        raise ValueError("policy root has no wsu:Id to reference from the bindings")
    if not require_timestamp:
        for assertion in [element for element in root.iter() if element.tag in _INCLUDE_TIMESTAMP]:
            parent = assertion.getparent()
            if parent is not None:
                parent.remove(assertion)
    return root


def _set_addresses(definitions: etree._Element, addresses: Mapping[str, str]) -> None:
    ports = _find(definitions, "wsdl:service/wsdl:port", minimum=1)
    names = {str(port.get("name")) for port in ports}
    if names != set(addresses):
        raise ValueError(f"WSDL template ports {sorted(names)} need an address each, got {sorted(addresses)}")
    for port in ports:
        address = addresses[str(port.get("name"))]
        soap_address = port.find("soap:address", namespaces=dict(_NSMAP))
        if soap_address is None:
            soap_address = _find_one(port, "soap12:address")
        soap_address.set("location", address)
        _find_one(port, "wsa10:EndpointReference/wsa10:Address").text = address


@functools.cache
def _template() -> bytes:
    """Read the template bytes once (bytes are immutable; each render parses its own tree)."""
    return importlib.resources.files(_WSDL_PACKAGE).joinpath(_WSDL_TEMPLATE).read_bytes()


def _parser() -> etree.XMLParser:
    """Build a fresh parser per render (lxml parsers are not thread-safe), dropping blank text and comments."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_blank_text=True,
        remove_comments=True,
    )


def _find(root: etree._Element, path: str, *, minimum: int) -> list[etree._Element]:
    found = root.findall(path, namespaces=dict(_NSMAP))
    if len(found) < minimum:
        raise ValueError(f"WSDL template: expected at least {minimum} of {path}, found {len(found)}")
    return found


def _find_one(root: etree._Element, path: str) -> etree._Element:
    found = _find(root, path, minimum=1)
    if len(found) != 1:
        raise ValueError(f"WSDL template: expected exactly one {path}, found {len(found)}")
    return found[0]
