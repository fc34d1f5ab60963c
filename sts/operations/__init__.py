"""The four WS-Trust bindings, side by side as in Apache CXF's ``operation/`` package (WS-Trust 1.3 §4-§7).

Each binding is one module and one callable class taking a :class:`~sts.service.TrustCall`:
:mod:`~sts.operations.issue`, :mod:`~sts.operations.validate`, :mod:`~sts.operations.renew` and
:mod:`~sts.operations.cancel`. They never import each other; what they share lives beside them:

* :mod:`~sts.operations.events`: the audit event of an operation's outcome;
* :mod:`~sts.operations.targets`: Validate/Renew/Cancel targets → what the STS knows of the token, and whose it is;
* :mod:`~sts.operations.minting`: what Issue and Renew share: the plan of a token, its subject and claims, and
  making it (the token provider of :mod:`sts.tokens.provider`, then the ledger, then the RSTR values);
* :mod:`~sts.operations.delegation` and :mod:`~sts.operations.transformation`: OnBehalfOf/ActAs of Issue, and
  the new token of a Validate that asks for one (WS-Trust 1.3 §7), each under its relying party's policy;
* :mod:`~sts.operations.records`: persistence: the typed, versioned renewal record kept with each token and the
  ledger that writes it to the token store.
"""
