"""Algorithm allow-lists as enums whose values are the spec URIs (XML Signature, XML Encryption 1.0/1.1)."""

from __future__ import annotations

from enum import StrEnum


class Canonicalization(StrEnum):
    """Canonicalization methods accepted and used: exclusive c14n only.

    Inclusive c14n costs super-linear time in the namespace declarations in scope: a CPU bomb for a verifier.
    """

    EXCLUSIVE = "http://www.w3.org/2001/10/xml-exc-c14n#"


class SignatureMethod(StrEnum):
    """Signature methods accepted on input; the STS signs with RSA-SHA256."""

    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
    RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"


class DigestMethod(StrEnum):
    """Digest methods accepted on input; the STS digests with SHA-256."""

    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
    SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"


class Transform(StrEnum):
    """Reference transforms accepted on input."""

    ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
    EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


class DataCipher(StrEnum):
    """Content-encryption algorithms for issued tokens: GCM by default, CBC only for a relying party set to it.

    CBC is open to padding-oracle attacks (Jager and Somorovsky, "How to Break XML Encryption", CCS 2011), but
    .NET Framework relying parties have no AES-GCM.
    """

    AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
    AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
    AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"


class KeyTransport(StrEnum):
    """Key-transport algorithms for issued tokens; RSA 1.5 is deliberately absent (XML Encryption 1.1 §5.5.1)."""

    RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
    RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"


class CipherName(StrEnum):
    """Short names of the data ciphers, as written in the relying-party registry and on the command line."""

    AES256_GCM = "aes256-gcm"
    AES128_GCM = "aes128-gcm"
    AES256_CBC = "aes256-cbc"


class KeyTransportName(StrEnum):
    """Short names of the key-transport algorithms, as written in the registry and on the command line."""

    RSA_OAEP_MGF1P = "rsa-oaep-mgf1p"
    RSA_OAEP = "rsa-oaep"


# Short name -> algorithm URI, in the order messages list them.
CIPHER_NAMES: dict[CipherName, DataCipher] = {
    CipherName.AES256_GCM: DataCipher.AES256_GCM,
    CipherName.AES128_GCM: DataCipher.AES128_GCM,
    CipherName.AES256_CBC: DataCipher.AES256_CBC,
}
KEY_TRANSPORT_NAMES: dict[KeyTransportName, KeyTransport] = {
    KeyTransportName.RSA_OAEP_MGF1P: KeyTransport.RSA_OAEP_MGF1P,
    KeyTransportName.RSA_OAEP: KeyTransport.RSA_OAEP,
}
