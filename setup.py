"""The C fan-out kernel, the one compiled part (src/incamera/media/fanout_kernel.py says
why); everything else is in pyproject.toml. Optional: without a C compiler and Python's
headers the install still succeeds, and workers forward with the Python kernel."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "incamera.media._fanout",
            sources=["src/incamera/media/_fanout.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
