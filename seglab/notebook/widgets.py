"""The convolution explorer: sliders that redraw a convolution (ipywidgets), with a static fallback."""

from __future__ import annotations

__all__ = ["conv_explorer"]


def interactive() -> bool:
    """True in a Jupyter kernel with ipywidgets (widgets can be shown), False elsewhere."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def conv_explorer(i: int = 5, k: int = 3, s: int = 2, p: int = 1, d: int = 1, transposed: bool = False) -> None:
    """Sliders for input size, kernel, stride, padding, dilation and a transposed mode; redraws the
    grids and prints the output size. Outside a Jupyter kernel it draws one static figure instead."""
    import matplotlib.pyplot as plt

    from seglab.arithmetic import conv_output_size, transposed_conv_output_size
    from seglab.notebook.draw import draw_convolution

    def show(i, k, s, p, d, transposed, output_padding):
        try:
            if transposed:
                size = transposed_conv_output_size(i, k, s, p, d, output_padding)
                formula = f"(i−1)·s − 2p + d·(k−1) + output_padding + 1 = {size}"
            else:
                size = conv_output_size(i, k, s, p, d)
                formula = f"⌊(i + 2p − d·(k−1) − 1) / s⌋ + 1 = {size}"
            print(f"output size: {size}    {formula}")
            draw_convolution(i, k, s, p, d, transposed=transposed, output_padding=output_padding)
            plt.show()
        except ValueError as error:
            print(f"not a valid layer: {error}")

    if not interactive():
        show(i, k, s, p, d, transposed, 0)
        return None

    import ipywidgets as w
    from IPython.display import display

    sliders = {
        "i": w.IntSlider(i, 1, 12, description="input i"),
        "k": w.IntSlider(k, 1, 5, description="kernel k"),
        "s": w.IntSlider(s, 1, 4, description="stride s"),
        "p": w.IntSlider(p, 0, 4, description="padding p"),
        "d": w.IntSlider(d, 1, 3, description="dilation d"),
        "transposed": w.Checkbox(transposed, description="transposed"),
        "output_padding": w.IntSlider(0, 0, 3, description="output_pad"),
    }
    out = w.interactive_output(show, sliders)
    ui = w.HBox([w.VBox(list(sliders.values())[:4]), w.VBox(list(sliders.values())[4:])])
    display(ui, out)
    return None
