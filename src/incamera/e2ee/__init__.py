"""End-to-end encryption (control plane side): MLS delivery and SFrame media framing.

:mod:`incamera.e2ee.sframe`: SFrame (RFC 9605) header, cipher suites, keys, frame layout.
"""
