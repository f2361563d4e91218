"""The media worker's two compiled helpers: the fan-out kernel (src/incamera/media/
fanout_kernel.py says why) and the receive half of the batch UDP I/O (media/_udp.c);
everything else is in pyproject.toml. Optional: without a C compiler and Python's headers
the install still succeeds, and workers use the equivalent Python code."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "incamera.media._fanout",
            sources=["src/incamera/media/_fanout.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "incamera.media._udp",
            sources=["src/incamera/media/_udp.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
