"""``summary(model, input_size)``: a per-layer table of output shape, total stride, receptive field
and parameters, measured with one forward pass."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from seglab.arithmetic import ReceptiveField, is_spatial, layer_geometry
from seglab.notebook.tables import table
from seglab.training.modes import eval_mode

__all__ = ["LayerRow", "summary"]


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    total_stride: float  # input pixels between neighbouring output pixels
    receptive_field: float  # input pixels seen by one output pixel (along the deepest path)
    parameters: int


def _format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"


def summary(model: nn.Module, input_size, *, file=None, print_table: bool = True) -> list[LayerRow]:
    """Run ``model`` once on zeros of ``input_size`` and tabulate every layer it calls, in order.

    ``input_size`` is ``H`` (square), ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``. Total stride and
    receptive field follow the layers in the order they run, which is the deepest path for FCN and
    U-Net (a short-cut or skip-connection adds a shallower path, which never sees further).
    """
    size = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    if len(size) == 1:
        size = size * 2
    if len(size) == 2:
        size = (getattr(model, "in_channels", 3), *size)
    if len(size) == 3:
        size = (1, *size)
    if len(size) != 4:
        raise ValueError(f"input_size must be H, (H, W), (C, H, W) or (B, C, H, W), got {input_size!r}")

    names = {module: name for name, module in model.named_modules()}
    rows: list[LayerRow] = []
    field = ReceptiveField(size=1, jump=1, start=0.0)

    def record(module, _inputs, output):
        nonlocal field
        if is_spatial(module):
            field = field.step(layer_geometry(module))
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
        own = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerRow(names.get(module, "?"), type(module).__name__, shape, field.jump, field.size, own))

    leaves = [m for m in model.modules() if not list(m.children())]  # every spatial layer is a leaf
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
        with eval_mode(model), torch.no_grad():
            output = model(torch.zeros(size, device=device))
        if rows and tuple(output.shape) != rows[-1].output_shape:  # e.g. U-Net crops its padding away
            rows.append(LayerRow("(output)", "crop", tuple(output.shape), field.jump, field.size, 0))
    finally:
        for hook in hooks:
            hook.remove()

    if print_table:
        _print(model, rows, size, file or sys.stdout)
    return rows


def _print(model: nn.Module, rows: list[LayerRow], size: tuple[int, ...], file) -> None:
    cells = [[r.name, r.kind, str(r.output_shape), _format_number(r.total_stride), _format_number(r.receptive_field),
              f"{r.parameters:,}"] for r in rows]
    print(f"{type(model).__name__} on input {size}", file=file)
    print(table(["layer", "type", "output shape", "stride", "RF", "params"], cells, markdown=False, align="<<<>>>"),
          file=file)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"parameters: {total:,} ({trainable:,} trainable)", file=file)
