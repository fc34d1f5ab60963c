"""Static WSDL template of the STS endpoint (``sts.wsdl``), rendered by :mod:`sts.soap.wsdl_render`."""
