"""Build step for the optional C extension; the project's metadata lives in pyproject.toml.

``xmkd.ntu._fastparse`` is the fast exact reader of NTU ``.skeleton`` files. It is optional:
without a C compiler the install still succeeds and :mod:`xmkd.ntu.skeleton_file` reads files
with its numpy path (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("xmkd.ntu._fastparse", sources=["xmkd/ntu/_fastparse.c"], optional=True),
    ]
)
