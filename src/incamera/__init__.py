"""incamera: self-hosted, end-to-end-encrypted group video conferencing."""

__version__ = "0.1.0"
