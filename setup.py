"""Build the native core.

Every ``native/<name>.pyx`` becomes the extension module ``bridge._<name>``
(native/ holds sources only; it is not an import package).  Set
``GLUTEBRIDGE_ONLY=emg,sway`` to build a subset while developing.
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
only = {s.strip() for s in os.environ.get("GLUTEBRIDGE_ONLY", "").split(",") if s.strip()}

extensions = []
for pyx in sorted((HERE / "native").glob("*.pyx")):
    name = pyx.stem
    if only and name not in only:
        continue
    extensions.append(
        Extension(
            f"bridge._{name}",
            [f"native/{name}.pyx"],
            include_dirs=[np.get_include(), "native"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O3"],
        )
    )

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[".", "native"],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
