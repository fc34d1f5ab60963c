"""WS-Security inbound processing (WSS 1.1, UsernameToken Profile 1.1, WS-I BSP 1.1).

Framework-free checks on the already parsed envelope (wstrust-protocol.md §15, security-catalogue.md §3 D):

* :mod:`sts.wss.header` finds the one ``wsse:Security`` header addressed to us and sorts its children
  (rows W01-W03, W27, S08-S12, G13);
* :mod:`sts.wss.timestamp` parses ``xsd:dateTime`` values and applies the freshness windows (W19-W23);
* :mod:`sts.wss.username` reads a ``wsse:UsernameToken`` into a :class:`~sts.wss.username.UsernameCredential`
  and computes PasswordDigest values (W04-W15, W26, A08, A09).

No password is checked against a user store here, and nothing here decrypts or verifies signatures.
"""
