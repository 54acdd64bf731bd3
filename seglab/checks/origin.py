"""Whose code a file is: seglab's, torch's, Python's (a library), or the student's (``None``).

>>> import os
>>> library_of(os.__file__), library_of(__file__), library_of("/home/student/answer.py")
('Python', 'seglab', None)
"""

from __future__ import annotations

import os
import sys
import sysconfig

__all__ = ["library_of"]

SEGLAB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder of the seglab package


def library_of(filename: str) -> str | None:
    """``"seglab"``, ``"torch"`` or ``"Python"`` when ``filename`` is library code, else ``None`` (the student's)."""
    path = os.path.abspath(filename)
    torch_file = getattr(sys.modules.get("torch"), "__file__", None)
    for name, folder in (("seglab", SEGLAB), ("torch", os.path.dirname(torch_file) if torch_file else ""),
                         ("Python", sysconfig.get_paths()["stdlib"]), ("Python", sysconfig.get_paths()["purelib"])):
        if folder and path.startswith(folder + os.sep):
            return name
    return None
