"""ClientHellos are built once per offer and then only their random values change."""

from __future__ import annotations

import pytest
from tlslite.messages import ClientHello
from tlslite.utils.codec import Parser

from exporter.engine.catalogue import CATALOGUE, Protocol
from exporter.engine.enumeration import first_offer
from exporter.engine.hello import HelloSpec


def parsed(record: bytes) -> ClientHello:
    return ClientHello().parse(Parser(bytearray(record[6:])))


@pytest.mark.parametrize("protocol", list(Protocol))
def test_each_hello_has_fresh_randoms_and_the_same_offer(protocol: Protocol) -> None:
    spec: HelloSpec = first_offer(CATALOGUE, protocol, "origin.test")
    one, two = parsed(spec.encode()), parsed(spec.encode())
    assert one.random != two.random
    assert (one.client_version, one.cipher_suites) == (two.client_version, two.cipher_suites)
    assert (
        one.server_name == two.server_name == (b"origin.test" if protocol.value != "SSLv3" else b"")
    )
    if protocol is Protocol.TLSv1_3:
        assert one.session_id != two.session_id
        shares = [h.getExtension(51).client_shares[0].key_exchange for h in (one, two)]
        assert shares[0] != shares[1]
        assert len(shares[0]) == 32
    # Byte for byte what building it afresh gives, but for those values.
    fresh = spec.build(bytes(one.random), bytes(one.session_id), _share(one))
    assert parsed(fresh).write() == one.write()


def _share(hello: ClientHello) -> bytes:
    extension = hello.getExtension(51)
    return bytes(extension.client_shares[0].key_exchange) if extension else b"\0" * 32


@pytest.mark.parametrize("name", ["origin.test", None, "127.0.0.1", "bücher.test", "a" * 63])
@pytest.mark.parametrize("protocol", [Protocol.TLSv1, Protocol.TLSv1_2, Protocol.TLSv1_3])
def test_the_server_name_is_added_as_building_it_afresh_would(
    protocol: Protocol, name: str | None
) -> None:
    spec = first_offer(CATALOGUE, protocol, name)
    encoded = spec.encode()
    hello = parsed(encoded)
    again = spec.build(bytes(hello.random), bytes(hello.session_id), _share(hello))
    assert encoded == again
