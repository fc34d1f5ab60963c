"""WS-SecurityPolicy files of the WSO2 security scenarios this STS implements (packaged as ``sts.policies``)."""
