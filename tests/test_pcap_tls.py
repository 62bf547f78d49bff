"""TLS hello parsing on arbitrary bytes: a hello, None (incomplete) or TlsError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.ingest.packet import tls


@settings(max_examples=400)
@given(st.binary(max_size=300), st.sampled_from([20, 21, 22, 23]), st.sampled_from([1, 2, 11]))
def test_any_record_gives_a_hello_none_or_tls_error(body: bytes, ctype: int, kind: int) -> None:
    record = bytes([ctype, 3, 3]) + (len(body) + 4).to_bytes(2, "big")
    record += bytes([kind]) + len(body).to_bytes(3, "big") + body
    try:
        msg = tls.handshake_message(record)
        if msg is not None:
            hello = tls.parse_hello(msg)
            hello.ja3(), hello.ja4(), hello.version_name, hello.cipher_name
    except tls.TlsError:
        pass


def test_an_encrypted_record_that_starts_like_a_hello_is_refused() -> None:
    # An encrypted Finished whose first byte happens to be 1 (ClientHello): no version 3.x.
    msg = bytes([1, 0, 0, 40]) + bytes([0x9C, 0x11]) + bytes(38)
    with pytest.raises(tls.TlsError):
        tls.parse_hello(msg)
