"""Render the static WSDL of the STS endpoint with its WS-SecurityPolicy and endpoint addresses.

The template (``sts/soap/wsdl/sts.wsdl``) and the policy files (``policies/``, packaged as ``sts.policies``) are
our own files, not request input, so they do not go through :func:`sts.xmlutil.parse_untrusted`; they are still
parsed without entity expansion, DTD loading or network access. Rendering happens once at startup; the result is
served as-is on ``GET <endpoint>?wsdl`` (wstrust-protocol.md §3, "Endpoint paths").
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from itertools import takewhile
from pathlib import Path
from types import MappingProxyType
from typing import Final

from lxml import etree

from sts import ns

__all__ = ["SCENARIO_POLICY_FILES", "load_policy", "render_wsdl"]

SCENARIO_POLICY_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "UTOverTransport": "scenario1-policy.xml",
    }
)
"""WSO2 security scenario name → policy file in ``policies/`` (WSO2's own ``scenarioN-policy.xml`` naming)."""

_WSDL_PACKAGE: Final = "sts.soap.wsdl"
_WSDL_TEMPLATE: Final = "sts.wsdl"
_POLICY_PACKAGE: Final = "sts.policies"

_WSDL_SOAP11: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
_WSDL_SOAP12: Final = "http://schemas.xmlsoap.org/wsdl/soap12/"

_DOCUMENTATION: Final = ns.qn(ns.WSDL, "documentation")
_POLICY: Final = ns.qn(ns.WSP, "Policy")
_POLICY_REFERENCE: Final = ns.qn(ns.WSP, "PolicyReference")
_WSU_ID: Final = ns.qn(ns.WSU, "Id")
_NSMAP: Final[Mapping[str, str]] = MappingProxyType(
    {
        "wsdl": ns.WSDL,
        "wsp": ns.WSP,
        "soap": _WSDL_SOAP11,
        "soap12": _WSDL_SOAP12,
    }
)


def load_policy(name: str) -> bytes:
    """Return the WS-SecurityPolicy file of the WSO2 security scenario ``name`` (e.g. ``"UTOverTransport"``).

    Raises :class:`KeyError` for a scenario this STS has no policy file for.
    """
    try:
        file_name = SCENARIO_POLICY_FILES[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIO_POLICY_FILES))
        raise KeyError(f"unknown security scenario {name!r} (known: {known})") from None
    return _policy_folder().joinpath(file_name).read_bytes()


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


def render_wsdl(policy: bytes, soap11_address: str, soap12_address: str) -> bytes:
    """Return the STS WSDL with ``policy`` embedded and the SOAP 1.1 / 1.2 port addresses filled in.

    ``policy`` must be a document whose root is a ``wsp:Policy`` (WS-Policy 2004/09) carrying a ``wsu:Id``. A copy of
    it becomes the first child of ``wsdl:definitions`` (WS-PolicyAttachment), and the ``wsp:PolicyReference`` of
    both bindings is pointed at ``#<wsu:Id>``. The result is compact UTF-8 with an XML declaration and no comments.

    Raises :class:`ValueError` for a policy without that root or Id, and :class:`lxml.etree.XMLSyntaxError` for
    bytes that are not well-formed XML.
    """
    definitions = etree.fromstring(_template(), parser=_parser())
    policy_root = etree.fromstring(policy, parser=_parser())
    if policy_root.tag != _POLICY:
        raise ValueError(f"policy root must be {_POLICY}, not {policy_root.tag}")
    policy_id = policy_root.get(_WSU_ID)
    if not policy_id:
        raise ValueError("policy root has no wsu:Id to reference from the bindings")

    for reference in _find(definitions, "wsdl:binding/wsp:PolicyReference", minimum=2):
        reference.set("URI", f"#{policy_id}")
    _find_one(definitions, "wsdl:service/wsdl:port/soap:address").set("location", soap11_address)
    _find_one(definitions, "wsdl:service/wsdl:port/soap12:address").set("location", soap12_address)

    # wsdl:documentation, when present, must stay the first child (WSDL 1.1 schema).
    position = sum(1 for _ in takewhile(lambda child: child.tag == _DOCUMENTATION, definitions))
    definitions.insert(position, policy_root)
    return etree.tostring(definitions, encoding="UTF-8", xml_declaration=True)


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


MEX_NS: Final = "http://schemas.xmlsoap.org/ws/2004/09/mex"


def render_mex(wsdl: bytes) -> bytes:
    """A WS-MetadataExchange ``Metadata`` document holding the WSDL (and so its policy), for clients that
    discover the STS by MEX GET (WCF's ``svcutil``, AD FS-style ``/mex`` URLs)."""
    definitions = etree.fromstring(wsdl, parser=_parser())
    metadata = etree.Element(etree.QName(MEX_NS, "Metadata"), nsmap={"wsx": MEX_NS})
    section = etree.SubElement(metadata, etree.QName(MEX_NS, "MetadataSection"))
    section.set("Dialect", ns.WSDL)
    section.set("Identifier", definitions.get("targetNamespace", ""))
    section.append(definitions)
    return bytes(etree.tostring(metadata, xml_declaration=True, encoding="UTF-8"))
