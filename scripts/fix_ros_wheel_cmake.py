"""Point the PyPI ROS 2 wheels' CMake exports at this interpreter's include directories.

The wheels' `export_<pkg>__rosidl_generator_pyExport.cmake` files name the include paths of the machine that
built them (/opt/python/cp311-cp311/...), and CMake stops with "includes non-existent path". Rewriting every
Python and numpy include path in them to this interpreter's is idempotent and needs no root.
Usage: VENV/bin/python fix_ros_wheel_cmake.py VENV_PREFIX   (run it with the venv's real, resolved path)
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

PY_INCLUDE = re.compile(r'[^;"\s]*/include/python3\.\d+')
NUMPY_INCLUDE = re.compile(r'[^;"\s]*/site-packages/numpy/(?:_core|core)/include')


def main(prefix: str) -> int:
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    changed = 0
    for path in Path(prefix, "share").glob("*/cmake/export_*__rosidl_generator_pyExport.cmake"):
        text = path.read_text()
        new = PY_INCLUDE.sub(py_include, NUMPY_INCLUDE.sub(np_include, text))
        if new != text:
            path.write_text(new)
            changed += 1
    if changed:
        print(f"[setup] pointed {changed} ROS wheel CMake exports at this interpreter's include directories")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
