"""seglab: semantic segmentation with deep learning, a hands-on course package.

Modules: ``arithmetic`` (output sizes, receptive fields), ``layers`` (bilinear upsampling,
transposed convolution, skip-connection = concatenation, short-cut = summation, dilated = atrous
convolution), ``models`` (FCN-32s/16s/8s, U-Net), ``summary`` (per-layer table).
"""

__version__ = "0.1.0"
