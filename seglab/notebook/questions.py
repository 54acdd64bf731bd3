"""The preparation self-test of notebook 00: questions on the theory the session builds on.

Each question is a :class:`QuizQuestion`: multiple choice (``options``, ``answer`` = the index of the
right one) or numeric (``answer`` a number). ``explanation`` is shown after an answer, right or wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PREPARATION_QUESTIONS", "QuizQuestion"]


@dataclass(frozen=True)
class QuizQuestion:
    topic: str
    prompt: str
    answer: int | float
    explanation: str
    options: tuple[str, ...] = ()  # empty: a numeric question

    @property
    def numeric(self) -> bool:
        return not self.options

    def is_correct(self, response) -> bool:
        if self.numeric:
            try:
                return abs(float(response) - float(self.answer)) < 1e-6
            except (TypeError, ValueError):
                return False
        return response == self.answer


PREPARATION_QUESTIONS = (
    QuizQuestion("semantic segmentation", "How is semantic segmentation defined?", 1,
             "Semantic segmentation labels every pixel with a class; it does not tell apart objects of the same "
             "class (that is instance segmentation).",
             ("One class label for the whole image", "A class label for every pixel of the image",
              "A bounding box and a class for every object", "A separate mask for every object instance")),
    QuizQuestion("FCN versus classifier", "What is different in a fully convolutional network compared to a "
             "VGG-style classifier?", 2,
             "Its fully connected layers become convolutions (fc6 a kxk, fc7 a 1x1 convolution), so it accepts any "
             "input size and outputs a map of class scores, which upsampling brings back to the image size.",
             ("It has no pooling layers", "It is trained without labels",
              "Its fully connected layers are replaced by convolutions, so it outputs a score map for any input size",
              "It uses larger convolution kernels")),
    QuizQuestion("FCN layers", "Which kinds of layers does an FCN use?", 0,
             "Convolution + ReLU and max-pooling (from VGG), 1x1 score convolutions, transposed convolutions "
             "(initialised as bilinear upsampling), crops, and element-wise sums (short-cuts). No fully connected "
             "layers.",
             ("Convolutions, pooling, 1x1 score convolutions, transposed convolutions, crops and sums",
              "Fully connected layers only", "Convolutions and fully connected layers with a softmax per pixel",
              "Recurrent layers over the rows of the image")),
    QuizQuestion("output resolution", "What defines the spatial resolution of an FCN's output segmentation map "
             "(before the final upsampling)?", 3,
             "The total stride — the product of the strides of all layers before the score layer (32 for VGG16's "
             "five poolings). FCN-16s/8s add finer score maps (stride 16, 8) through short-cuts.",
             ("The number of classes", "The number of channels of fc7", "The input size only",
              "The total stride of the layers before the score layer")),
    QuizQuestion("numeric: convolution", "A 224 x 224 image goes through a 7 x 7 convolution with stride 2 and "
             "padding 3 (per side). What is the output size (one side)?", 112,
             "floor((224 + 2*3 - 7) / 2) + 1 = floor(223 / 2) + 1 = 111 + 1 = 112."),
    QuizQuestion("numeric: total stride", "How many input pixels lie between neighbouring cells of VGG16's pool5 "
             "output (the total stride)?", 32, "Five 2x2 poolings with stride 2: 2^5 = 32."),
    QuizQuestion("transposed convolution", "How can a transposed convolution be understood in signal-processing "
             "terms?", 1,
             "It inserts s - 1 zeros between samples (a fractional stride 1/s) and filters the result with its "
             "kernel, the interpolation filter; with a triangle kernel it is exactly bilinear upsampling.",
             ("As the inverse of a convolution that removes blur",
              "As zero insertion (upsampling) followed by a learned interpolation filter",
              "As a Fourier transform of the feature map", "As max-pooling in reverse that copies the maximum")),
    QuizQuestion("numeric: transposed convolution", "A transposed convolution with kernel 4, stride 2 and padding 1 "
             "gets an input of side 16. What is the output side?", 32,
             "(i - 1) s - 2p + k = 15 * 2 - 2 + 4 = 32: with k = 2f, s = f, p = f/2 it upsamples exactly by f."),
    QuizQuestion("nomenclature", "Which name is NOT used for the transposed convolution?", 2,
             "Transposed convolution = deconvolution = fractionally strided convolution. Atrous convolution is "
             "the dilated convolution, a different layer.",
             ("Deconvolution", "Fractionally strided convolution", "Atrous convolution", "Up-convolution (U-Net)")),
    QuizQuestion("nomenclature", "In this course, what is a skip-connection and what is a short-cut?", 0,
             "Skip-connection = concatenation (U-Net); short-cut = summation (FCN's fusion of score maps).",
             ("Skip-connection = concatenation, short-cut = summation",
              "Skip-connection = summation, short-cut = concatenation",
              "Both mean summation", "Both mean concatenation")),
    QuizQuestion("U-Net versus FCN", "Which is a difference between U-Net and the FCN of Long, Shelhamer and "
             "Darrell?", 3,
             "U-Net has a symmetric expanding path with learned up-convolutions at every level and concatenates "
             "the encoder's feature maps (skip-connections); FCN adds class scores of pool3/pool4 (short-cuts) "
             "and upsamples in one to three steps.",
             ("U-Net has no pooling", "FCN uses concatenation, U-Net summation",
              "U-Net can only classify whole images",
              "U-Net has an expanding path as deep as its contracting path and concatenates encoder features at "
              "every level")),
    QuizQuestion("deep and shallow features", "Why does segmentation need both deep and shallow features?", 1,
             "Deep features (large receptive field, coarse) tell what a region is; shallow features (small "
             "receptive field, full resolution) tell exactly where edges are. Segmentation needs both the class "
             "and the precise boundary.",
             ("Deep features are faster to compute",
              "Deep features know what (semantics, context) but only roughly where; shallow features know exactly "
              "where (edges) but not what",
              "Shallow features have larger receptive fields", "They are needed only for training, not inference")),
    QuizQuestion("numeric: U-Net", "The U-Net paper's network (unpadded 3x3 convolutions, four poolings) gets a "
             "572 x 572 tile. What is the output side?", 388,
             "Down: 572 -> 568 -> 284 -> 280 -> 140 -> 136 -> 68 -> 64 -> 32 -> 28; up: 56 -> 52 -> 104 -> 100 -> "
             "200 -> 196 -> 392 -> 388."),
    QuizQuestion("dilated convolution", "A 3 x 3 convolution with dilation 2 covers how many pixels along one side?",
             5, "d (k - 1) + 1 = 2 * 2 + 1 = 5, with the same 9 weights."),
)
