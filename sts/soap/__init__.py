"""The SOAP edge: HTTP transport, envelope checks, WS-Addressing, fault rendering and the Spyne adapter."""
