"""End-to-end encryption: SFrame (RFC 9605) media-frame protection and its MLS key scheme.

Modules: :mod:`incamera.e2ee.sframe` (SFrame header, cipher suites, keys, frame layout).
"""
