"""What a check sends between the grader and a student's kernel: JSON with tensors as raw bytes.

``encode`` turns numbers, strings, lists, tuples, dicts and tensors (or NumPy arrays) into JSON-able
data; anything else becomes ``{"__type__": "<name>"}`` so the judge can say what came back. ``decode``
reverses it and is strict: it is what the grader runs on data a submission produced, so it only
builds numbers, strings, lists, dicts and tensors of a few dtypes, checks every size, and never
unpickles or calls anything.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import torch

__all__ = ["WireError", "decode", "encode"]

DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}
MAX_ELEMENTS = 1 << 24  # per tensor: 64 MiB of float32
MAX_DEPTH = 16


class WireError(ValueError):
    """Data from a kernel that is not what a check sends back."""


def _dtype_name(array: np.ndarray) -> str:
    if array.dtype == np.bool_:
        return "bool"
    if np.issubdtype(array.dtype, np.integer):
        return "int64"
    return "float64" if array.dtype == np.float64 else "float32"


def _encode_array(array: np.ndarray) -> dict:
    if np.iscomplexobj(array):
        return {"__type__": f"complex array {array.dtype}"}
    name = _dtype_name(array)
    data = np.ascontiguousarray(array, dtype=np.dtype(DTYPES[name]).newbyteorder("<"))
    return {"__tensor__": list(array.shape), "dtype": name, "data": base64.b64encode(data.tobytes()).decode()}


def encode(value, depth: int = 0):
    """``value`` as JSON-able data (tuples become lists)."""
    if depth > MAX_DEPTH:
        return {"__type__": "nested too deeply"}
    if value is None:
        return None
    if isinstance(value, (bool, int, str)):  # a subclass travels as its plain value (no custom __eq__)
        return bool(value) if isinstance(value, bool) else int(value) if isinstance(value, int) else str(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.float()  # float16, bfloat16: NumPy has no bfloat16
        return _encode_array(tensor.resolve_conj().resolve_neg().numpy())
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, np.generic):
        return encode(value.item(), depth + 1)
    if isinstance(value, (list, tuple)):
        return [encode(item, depth + 1) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: encode(item, depth + 1) for key, item in value.items()}
    return {"__type__": type(value).__name__}


class ReturnedType:
    """An object of a type that cannot travel (a module, a generator, ...): only its type name arrives."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _decode_tensor(data: dict) -> torch.Tensor:
    shape, dtype, payload = data.get("__tensor__"), data.get("dtype"), data.get("data")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape)
            and len(shape) <= 8):
        raise WireError(f"bad tensor shape {shape!r}")
    if dtype not in DTYPES or not isinstance(payload, str):
        raise WireError(f"bad tensor dtype {dtype!r}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise WireError(f"tensor of {count} elements is larger than any check needs")
    raw = base64.b64decode(payload, validate=True)
    itemsize = np.dtype(DTYPES[dtype]).itemsize
    if len(raw) != count * itemsize:
        raise WireError(f"tensor data of {len(raw)} bytes for shape {shape} and dtype {dtype}")
    array = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)
    return torch.from_numpy(array.astype(DTYPES[dtype]))


def decode(data, depth: int = 0):
    """The values :func:`encode` made; raises :class:`WireError` for anything else."""
    if depth > MAX_DEPTH + 1:
        raise WireError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(item, depth + 1) for item in data]
    if isinstance(data, dict):
        if "__tensor__" in data:
            return _decode_tensor(data)
        if "__float__" in data:
            text = data["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise WireError(f"bad float {text!r}")
            return float(text)
        if "__type__" in data:
            return ReturnedType(str(data["__type__"])[:80])
        return {str(key): decode(item, depth + 1) for key, item in data.items()}
    raise WireError(f"unexpected {type(data).__name__}")
