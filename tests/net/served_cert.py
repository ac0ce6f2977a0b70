"""What certificate an HTTPS server presented on the connection of an httpx response."""

from __future__ import annotations

import ssl

import httpx
from cryptography import x509


def served_certificate(response: httpx.Response) -> x509.Certificate:
    """The certificate the server presented on the connection that carried ``response``."""
    stream = response.extensions["network_stream"]
    ssl_object: ssl.SSLObject = stream.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)
