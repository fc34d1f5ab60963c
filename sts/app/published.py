"""The addresses the STS publishes: its public URL, the WSDL ports of each scenario and the path a signed request
names as its destination (``wsa:To``)."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from sts.auth.signed_requests import CERTIFICATE_MIXED
from sts.auth.transport_certs import CERTIFICATE_TRANSPORT
from sts.config.settings import Settings
from sts.soap.transport import (
    ADFS_CERTIFICATE_MIXED_PATH,
    ADFS_CERTIFICATE_TRANSPORT_PATH,
    ADFS_FEB2005_PATH,
    ADFS_TRUST13_PATH,
    WSO2_PATH,
    WSO2_SOAP12_SUFFIX,
)
from sts.soap.wsdl_render import ScenarioEndpoint, load_scenario_policy


def public_url(settings: Settings) -> str:
    """The endpoint URL clients use: configured, else derived from the bind address."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host, _, port = settings.server.bind.rpartition(":")
    scheme = "https" if settings.server.tls_cert else "http"
    host = "localhost" if host in ("0.0.0.0", "::", "[::]", "") else host  # noqa: S104 - a comparison
    return f"{scheme}://{host}:{port}{WSO2_PATH}"


@functools.lru_cache(maxsize=64)  # a few served paths, asked at every signed request
def published_path(url: str, path: str) -> str:
    """The path of the endpoint served at ``path`` in the address the WSDL publishes for it
    (:func:`scenario_endpoint`): ``path`` itself unless the public URL mounts the STS below a prefix."""
    if path.startswith(WSO2_PATH + "/"):
        return urlsplit(url).path.rstrip("/") + path[len(WSO2_PATH) :]
    base = url[: -len(WSO2_PATH)] if url.endswith(WSO2_PATH) else url.rstrip("/")
    return urlsplit(base).path + path


def port_addresses(url: str) -> dict[str, str]:
    """The URL of each ``wsdl:port`` of the published WSDL, from the public URL of the WSO2 endpoint.

    The AD FS-style aliases live beside ``/services/wso2carbon-sts`` (under the same prefix when a proxy mounts
    the STS below one), else at the URL's origin.
    """
    if url.endswith(WSO2_PATH):
        base = url[: -len(WSO2_PATH)]
    else:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
    return {
        "wso2carbon-stsHttpsSoap11Endpoint": url,
        "wso2carbon-stsHttpsSoap12Endpoint": url + WSO2_SOAP12_SUFFIX,
        "UserNameWSTrustBinding_IWSTrust13Async": base + ADFS_TRUST13_PATH,
        "UserNameWSTrustBinding_IWSTrustFeb2005Async": base + ADFS_FEB2005_PATH,
    }


def scenario_endpoint(name: str, url: str) -> ScenarioEndpoint:
    """The WSDL ports of a scenario served on its own path (``/services/wso2carbon-sts/<name>``), and for
    certificatemixed and certificatetransport the AD FS one."""
    base = url[: -len(WSO2_PATH)] if url.endswith(WSO2_PATH) else url.rstrip("/")
    ports = {f"{name}HttpsSoap11Endpoint": ("soap11", f"{url}/{name}"), f"{name}HttpsSoap12Endpoint": (
        "soap12", f"{url}/{name}"
    )}
    if name == CERTIFICATE_MIXED:
        ports["CertificateWSTrustBinding_IWSTrust13Async"] = ("soap12", base + ADFS_CERTIFICATE_MIXED_PATH)
    if name == CERTIFICATE_TRANSPORT:
        ports["CertificateTransportWSTrustBinding_IWSTrust13Async"] = (
            "soap12", base + ADFS_CERTIFICATE_TRANSPORT_PATH
        )
    return ScenarioEndpoint(name, load_scenario_policy(name), ports)
