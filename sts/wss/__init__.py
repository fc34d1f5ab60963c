"""WS-Security inbound processing (WSS 1.1, UsernameToken Profile 1.1, WS-I BSP 1.1).

Framework-free checks on the already parsed envelope:

* :mod:`sts.wss.header` finds the one ``wsse:Security`` header addressed to us and sorts its children
  (WSS 1.1 SOAP Message Security §5-6; SOAP 1.1 §4.2.2 actor);
* :mod:`sts.wss.timestamp` parses ``xsd:dateTime`` values and applies the freshness windows (WSS 1.1 §10,
  "Security Timestamps");
* :mod:`sts.wss.username` reads a ``wsse:UsernameToken`` into a :class:`~sts.wss.username.UsernameCredential`
  and computes PasswordDigest values (UsernameToken Profile 1.1 §3.1, "Usernames and Passwords").

No password is checked against a user store here, and nothing here decrypts or verifies signatures.
"""
