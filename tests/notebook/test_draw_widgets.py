"""Figures and explorers used by the notebooks."""

import matplotlib
import pytest
import torch
import torchvision
from matplotlib.patches import Rectangle

from seglab.notebook.draw import draw_convolution, draw_resolution_streams
from seglab.notebook.viz import plot_receptive_field_growth
from seglab.notebook.widgets import conv_explorer

matplotlib.use("Agg")


@pytest.mark.parametrize("kwargs, size", [({"i": 5, "k": 3, "s": 2, "p": 1}, 3), ({"i": 7, "k": 3, "d": 2}, 3),
                                          ({"i": 3, "k": 3, "s": 2, "p": 1, "transposed": True,
                                            "output_padding": 1}, 6)])
def test_draw_convolution_titles_the_output_size(kwargs, size):
    ax = draw_convolution(**kwargs)
    assert ax.get_title().splitlines()[0].endswith(f"output {size}x{size}")  # the result first, then the layer
    cells = len(ax.patches)
    padded = kwargs["i"] + 2 * kwargs.get("p", 0) if not kwargs.get("transposed") else None
    if padded:
        assert cells == padded ** 2 + size ** 2


def test_draw_convolution_rejects_impossible_layers():
    with pytest.raises(ValueError):
        draw_convolution(2, 5)
    with pytest.raises(ValueError, match="equivalent direct convolution"):
        draw_convolution(3, 2, s=2, p=2, transposed=True)


def test_conv_explorer_falls_back_to_a_static_figure(capsys):
    assert conv_explorer(i=6, k=3, s=2, p=1) is None  # no Jupyter kernel here
    assert "output size: 3" in capsys.readouterr().out
    conv_explorer(i=2, k=5)
    assert "not a valid layer" in capsys.readouterr().out


def test_receptive_field_growth_figure():
    with torch.device("meta"):  # only the geometry is read
        fig = plot_receptive_field_growth(torchvision.models.vgg16().features)
    assert len(fig.axes) == 2 and "212" in " ".join(t.get_text() for t in fig.axes[1].get_legend().get_texts())
    names = [label.get_text() for label in fig.axes[0].get_xticklabels()]
    assert [name for name in names if name.startswith("pool")] == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert names[:3] == ["conv1", "conv2", "pool1"] and names[-1] == "pool5"  # VGG's own numbering of poolings


@pytest.mark.parametrize("branches", [2, 3, 4])
def test_resolution_streams_drawing(branches):
    """Encoder-decoder beside HRNet: one block per level down and up; HRNet's stream r in stages r..end."""
    left, right = draw_resolution_streams(branches)
    blocks = lambda ax: [p for p in ax.patches if isinstance(p, Rectangle)]  # noqa: E731
    assert len(blocks(left)) == 2 * branches
    assert len(blocks(right)) == sum(range(1, branches + 1)) + 1  # + the head
    assert "HRNet" in right.get_title() and "encoder" in left.get_title()
