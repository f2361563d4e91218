"""SDP for incamera: parse/serialise (RFC 8866) and the offer/answer rules of the SFU."""
