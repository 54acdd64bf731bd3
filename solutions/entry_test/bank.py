"""The entry test's question bank: tutor-only, never in the kit, the wheel or the zip.

``seglab entry-test`` reads it (``--bank solutions/entry_test``, the default). The kit's leak scan checks
every stem and right answer here against the kit (``seglab.course.kit``), and ``tests/test_entry_test.py``
checks that none appears word for word in notebook 00, whose 14 self-test questions students have seen.

* ``TOPICS``: one Moodle category each, in the order of a printed test; ``reread`` is the general feedback.
* ``ITEMS``: multiple-choice items (several wordings, each with its right answer; several distractor sets,
  each choice with its feedback) and numeric families (a stem with parameters; the answer comes from
  ``oracle``, which applies the PyTorch layer to a tensor of that size when the test is generated).
* ``PLAN``: items per topic in every variant (1 each: 16 questions).

Numeric families keep the structure of their parameters fixed (e.g. every convolution case needs the
floor), so their questions differ only in the numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.arithmetic import measured_receptive_field
from seglab.course.entry_test import Choice, ChoiceItem, NumericFamily, Topic, Wording

FCN = "Long, Shelhamer and Darrell, Fully convolutional networks for semantic segmentation (CVPR 2015)"
UNET = "Ronneberger, Fischer and Brox, U-Net (MICCAI 2015)"
GUIDE = "Dumoulin and Visin, A guide to convolution arithmetic for deep learning (2016)"

TOPICS = (
    Topic("segmentation", "Semantic segmentation",
          f"{FCN}, sections 1 and 3; the review by Guo et al. (2018), section 1."),
    Topic("fcn-vs-classifier", "FCN versus a classifier", f"{FCN}, section 3.1 and figure 2."),
    Topic("fcn-layers", "The layers of an FCN", f"{FCN}, sections 3.1, 3.3 and 4.1."),
    Topic("output-resolution", "What sets the output resolution", f"{FCN}, sections 3.1 and 4.2 (figure 3)."),
    Topic("unet-vs-fcn", "U-Net versus FCN", f"{UNET}, sections 1 and 2 (figure 1); {FCN}, section 4.2."),
    Topic("transposed-signal", "The transposed convolution in signal processing",
          f"{FCN}, section 3.3; {GUIDE}, section 4."),
    Topic("deep-shallow", "Deep and shallow features", f"{FCN}, section 4.2; {UNET}, section 1."),
    Topic("names-upsampling", "Nomenclature: the two upsampling layers",
          f"the course brief's nomenclature; {FCN}, section 3.3."),
    Topic("names-merges", "Nomenclature: dilated, skip-connection, short-cut",
          f"the course brief's nomenclature; {UNET}, section 2; {FCN}, section 4.2; {GUIDE}, section 5.1."),
    Topic("conv-output", "Output size: convolution", f"{GUIDE}, section 2."),
    Topic("pool-output", "Output size: pooling", f"{GUIDE}, section 3."),
    Topic("transposed-output", "Output size: transposed convolution", f"{GUIDE}, section 4."),
    Topic("total-stride", "Total stride", f"{FCN}, sections 3.1 and 4.1."),
    Topic("receptive-field", "Receptive field", f"{FCN}, section 3; {GUIDE}, sections 2 and 3."),
    Topic("unet-sizes", "U-Net with unpadded convolutions", f"{UNET}, section 2 and figures 1 and 2."),
    Topic("dilated-span", "Dilated (atrous) convolution", f"{GUIDE}, section 5.1."),
)

PLAN = {topic.id: 1 for topic in TOPICS}


def _c(text: str, feedback: str) -> Choice:
    return Choice(text, feedback)


ITEMS: list = [
    # --- semantic segmentation ------------------------------------------------------------------------
    ChoiceItem("segmentation.definition", "segmentation", (
        Wording("Which task is semantic segmentation?",
                _c("Giving every pixel one class out of a fixed set", "Right: a dense, per-pixel classification.")),
        Wording("What does a semantic segmentation network output for an image?",
                _c("A map with a class label for each pixel", "Right: one label per pixel.")),
    ), (
        (_c("A single class label for the image as a whole", "That is image classification."),
         _c("A box around each object, with its class and a score", "That is object detection."),
         _c("A separate mask for each object, two cars told apart", "That is instance segmentation.")),
        (_c("A sentence that describes what the scene shows", "That is image captioning."),
         _c("Groups of similar pixels, without any class names", "Unsupervised clustering has no classes."),
         _c("A distance from the camera for each of the pixels", "That is depth estimation, a regression.")),
    ), "Semantic segmentation labels pixels with classes; objects of one class share a label."),
    ChoiceItem("segmentation.instances", "segmentation", (
        Wording("Two people stand side by side in a photo. What does semantic segmentation give their pixels?",
                _c("The same label, person, for both of them", "Right: it does not separate instances.")),
        Wording("A street image shows three cars. How does semantic segmentation label the cars' pixels?",
                _c("All with one label, car, whichever car", "Right: telling the cars apart is instance "
                                                           "segmentation.")),
    ), (
        (_c("A label of its own for each person or car", "That is instance segmentation."),
         _c("No label at all: it only marks the background", "It labels every pixel, objects included."),
         _c("A label on the outline of each object only", "Every pixel is labelled, not just edges.")),
        (_c("One bounding box for each object, with a class", "Boxes are detection."),
         _c("A label only when there is one object in view", "It labels pixels, however many objects."),
         _c("A number per object that ranks them by size", "There is no ranking of objects.")),
    ), "Semantic segmentation does not count objects: that is instance segmentation."),
    # --- FCN versus a VGG classifier --------------------------------------------------------------------
    ChoiceItem("fcn.convolutionalised", "fcn-vs-classifier", (
        Wording("When the FCN turns a VGG classifier into a segmentation network, what happens to the "
                "classifier's fully connected layers?",
                _c("They are recast as convolutions, keeping the weights", "Right: convolutionalisation.")),
        Wording("What becomes of VGG's fully connected layers fc6 and fc7 in an FCN?",
                _c("They become a 7×7 and a 1×1 convolution", "Right: a fully connected layer is a convolution "
                                                              "over its whole input.")),
    ), (
        (_c("They are replaced by a recurrent network over the rows", "FCN has no recurrent layers."),
         _c("They stay, and the network classifies crops one by one",
            "That is the patch-wise approach FCN replaces with one dense pass."),
         _c("They are re-initialised and trained from scratch", "FCN keeps the classifier's weights.")),
        (_c("They are made wider, to hold one output per pixel", "A fixed-width layer still fixes the size."),
         _c("They are dropped together with all the poolings", "FCN keeps VGG's poolings."),
         _c("They are replaced by a softmax over all pixels", "A softmax has no weights to replace them with.")),
    ), "Convolutionalisation lets the classifier run on any input size and output a map of class scores."),
    ChoiceItem("fcn.any-size", "fcn-vs-classifier", (
        Wording("Why can an FCN take images of any size while a VGG classifier needs 224 × 224 inputs?",
                _c("No layer has a weight count tied to the input size", "Right: convolutions slide over any "
                                                                        "size.")),
        Wording("What lets a fully convolutional network accept inputs of arbitrary size?",
                _c("Its layers are all local and shared over positions", "Right: only fully connected layers "
                                                                         "fix the size.")),
    ), (
        (_c("It first resizes every input image to 224 × 224", "No resizing: it runs at the image's size."),
         _c("Its kernels are large enough to cover any image", "Kernel size is fixed and small."),
         _c("It was trained on images of every possible size", "Training sizes do not decide what a layer "
                                                              "accepts.")),
        (_c("Its pooling layers adapt their stride to the input", "The strides are fixed."),
         _c("It cuts the input into 224 × 224 tiles to classify", "That is the patch-wise approach."),
         _c("Batch normalisation removes the dependence on size", "VGG16 in FCN has no batch "
                                                                  "normalisation.")),
    ), "A layer with a fixed number of inputs (fully connected) fixes the image size; convolutions do not."),
    # --- the layers of an FCN -----------------------------------------------------------------------------
    ChoiceItem("fcn.layer-types", "fcn-layers", (
        Wording("Which set of layer types builds an FCN-8s?",
                _c("Conv + ReLU, max-pooling, 1×1 scores, upsampling, sums", "Right: and crops; no fully "
                                                                            "connected layer.")),
        Wording("An FCN for segmentation is assembled from which layers?",
                _c("VGG's convolutions and poolings, score layers, upsampling", "Right: fused by sums, with "
                                                                               "crops.")),
    ), (
        (_c("A convolutional encoder topped by fully connected layers", "An FCN has none."),
         _c("Convolutions, then recurrent layers along the rows", "There are no recurrent layers."),
         _c("Stride-1 convolutions only, with no pooling at all", "FCN keeps VGG's five poolings.")),
        (_c("Convolutions, then one softmax over the whole image", "The softmax is per pixel."),
         _c("Attention layers that compare every pair of pixels", "Attention is not part of FCN."),
         _c("Convolutions and a fully connected layer per pixel", "No fully connected layers.")),
    ), "FCN: VGG16's conv and pool layers, fc6/fc7 as convolutions, score layers, transposed convolutions, "
       "crops, and short-cuts (sums) of score maps."),
    ChoiceItem("fcn.upsampling-layer", "fcn-layers", (
        Wording("Which layer brings an FCN's coarse class scores back to the input resolution?",
                _c("A transposed convolution, started as bilinear", "Right: learnable in-network upsampling.")),
        Wording("How does the FCN of Long et al. upsample its score map inside the network?",
                _c("With transposed convolutions, bilinear at first", "Right: stride f, kernel 2f, bilinear "
                                                                      "weights.")),
    ), (
        (_c("With max-unpooling, from indices kept at pooling", "That is SegNet, not FCN."),
         _c("It does not: its output is one label for the image", "FCN outputs a dense map."),
         _c("By nearest-neighbour copies outside the network", "The upsampling is a layer of the network.")),
        (_c("With a fully connected layer, one output per pixel", "That would fix the size."),
         _c("With dilated convolutions that enlarge the map", "Dilation keeps the size."),
         _c("By running the network again on a larger image", "One pass, upsampled inside.")),
    ), "FCN's upsampling is a transposed convolution ('deconvolution' in the paper)."),
    # --- output resolution ---------------------------------------------------------------------------------
    ChoiceItem("resolution.total-stride", "output-resolution", (
        Wording("Before the final upsampling, what determines how coarse an FCN's score map is?",
                _c("The product of the strides up to the score layer", "Right: the total stride, 32 for "
                                                                       "VGG16.")),
        Wording("An FCN-32s produces one score per 32 × 32 input pixels. Where does the 32 come from?",
                _c("From VGG16's five poolings, each of stride 2", "Right: 2 to the power 5, the total "
                                                                  "stride.")),
    ), (
        (_c("From the number of classes the network scores", "Classes set the channels, not the size."),
         _c("From the number of channels of the layer fc7", "Channels do not change the spatial size."),
         _c("From the batch size that was used in training", "Unrelated to the spatial size.")),
        (_c("From the size of the largest kernel, fc6's 7×7", "Kernels with padding keep the size."),
         _c("From the number of ReLU layers in the encoder", "Activations keep the size."),
         _c("From the size of the images used in training", "The ratio holds for any input size.")),
    ), "Resolution = input size / total stride; FCN-16s and FCN-8s add finer score maps through short-cuts."),
    ChoiceItem("resolution.finer", "output-resolution", (
        Wording("How do FCN-16s and FCN-8s produce finer predictions than FCN-32s?",
                _c("They add pool4's and pool3's scores to upsampled ones", "Right: short-cuts from shallower "
                                                                           "layers.")),
        Wording("Why are the predictions of FCN-16s and FCN-8s less coarse than those of FCN-32s?",
                _c("Scores of pool4 and pool3 are summed in", "Right: fusion with short-cuts at strides 16 "
                                                              "and 8.")),
    ), (
        (_c("They predict more classes, so boundaries are finer", "The classes are the same."),
         _c("They remove the last two poolings of VGG16", "The backbone is unchanged."),
         _c("They are trained on larger images than FCN-32s", "Same data, different fusion.")),
        (_c("They concatenate the input image to the scores", "No concatenation with the image."),
         _c("They refine the output with a random field (CRF)", "FCN has no CRF."),
         _c("They use average instead of max-pooling", "Pooling is unchanged.")),
    ), "FCN-16s fuses pool4 (stride 16), FCN-8s also pool3 (stride 8): short-cuts, that is summation."),
    # --- U-Net versus FCN ----------------------------------------------------------------------------------
    ChoiceItem("unet.expanding-path", "unet-vs-fcn", (
        Wording("Which feature sets U-Net apart from the FCN of Long et al.?",
                _c("A learned up-convolution stage for every pooling", "Right: the symmetric expanding path.")),
        Wording("What distinguishes U-Net's architecture from the FCN's?",
                _c("An expanding path as deep as the contracting one", "Right: FCN upsamples in one to three "
                                                                       "steps.")),
    ), (
        (_c("U-Net keeps full resolution: it has no pooling", "It pools four times."),
         _c("U-Net classifies whole images, FCN segments them", "Both segment."),
         _c("U-Net upsamples once, by 32, at the very end", "That is FCN-32s.")),
        (_c("U-Net has fully connected layers at its bottom", "U-Net has none."),
         _c("U-Net is a pre-trained VGG16 with a new head", "U-Net is trained from scratch."),
         _c("U-Net upsamples bilinearly, FCN with learned kernels", "U-Net's up-convolutions are learned.")),
    ), "U-Net: contracting path, symmetric expanding path, skip-connections at every level; FCN: VGG16 "
       "encoder, few upsampling steps, short-cuts of scores."),
    ChoiceItem("unet.merge", "unet-vs-fcn", (
        Wording("How do U-Net and FCN merge encoder information into the upsampled maps?",
                _c("U-Net concatenates features, FCN sums scores", "Right: concatenation versus summation.")),
        Wording("Which pairing of network and merge operation is right?",
                _c("U-Net: concatenation; FCN: summation", "Right: skip-connection versus short-cut.")),
    ), (
        (_c("U-Net sums score maps, FCN concatenates features", "The other way round."),
         _c("Both concatenate the encoder's feature maps", "FCN sums."),
         _c("Neither: both use the deepest features only", "Both merge shallow information.")),
        (_c("Both sum class scores, at two levels each", "U-Net concatenates."),
         _c("U-Net multiplies maps, FCN takes their maximum", "Neither operation is used."),
         _c("U-Net merges at its bottleneck only, FCN never", "U-Net merges at every level.")),
    ), "U-Net concatenates encoder features (centre-cropped); FCN adds class scores of pool3/pool4."),
    # --- transposed convolution, signal processing ---------------------------------------------------------
    ChoiceItem("transposed.zero-insertion", "transposed-signal", (
        Wording("In signal-processing terms, what does a transposed convolution with stride s do?",
                _c("It puts s - 1 zeros between samples, then filters", "Right: zero insertion, then an "
                                                                        "interpolation filter.")),
        Wording("Which signal-processing pair of operations equals a stride-2 transposed convolution?",
                _c("Zero insertion, then an interpolation filter", "Right: the kernel is the interpolation "
                                                                   "filter.")),
    ), (
        (_c("A low-pass filter, then keeping every s-th sample", "That is downsampling."),
         _c("A Fourier transform, a product, an inverse transform", "Not a description of the layer."),
         _c("The exact inverse of a convolution, undoing its blur", "It is not an inverse (deconvolution).")),
        (_c("Copying each maximum back to where pooling found it", "That is max-unpooling."),
         _c("Averaging neighbouring samples to halve the length", "That is average pooling."),
         _c("Spreading the kernel taps apart, same output size", "That is dilated convolution.")),
    ), "Transposed convolution = fractional stride 1/s: zeros in, then a filter; a triangle kernel makes it "
       "linear interpolation."),
    ChoiceItem("transposed.bilinear-kernel", "transposed-signal", (
        Wording("Which kernel makes a stride-2 transposed convolution interpolate bilinearly (away from the "
                "borders)?",
                _c("The outer product of (1, 3, 3, 1)/4 with itself", "Right: the bilinear kernel FCN starts "
                                                                      "from.")),
        Wording("How does FCN initialise its upsampling layers so that they start as interpolation?",
                _c("With a separable triangle kernel of size 2f", "Right: the bilinear kernel; training may "
                                                                  "change it.")),
    ), (
        (_c("With random Gaussian weights of small variance", "That does not interpolate."),
         _c("With a 2 × 2 kernel of ones, then a division", "That copies neighbours at best."),
         _c("With the transpose of the last convolution's kernel", "Not how FCN initialises.")),
        (_c("With zeros, so that training finds the kernel", "Zeros give no signal across positions."),
         _c("With a single 1 at the centre of the kernel", "That inserts zeros and leaves them."),
         _c("With a wide Gaussian, one for every class", "Not the bilinear kernel.")),
    ), "Bilinear upsampling is a transposed convolution with a fixed triangle kernel."),
    # --- deep and shallow features -------------------------------------------------------------------------
    ChoiceItem("features.what-where", "deep-shallow", (
        Wording("Why does a segmentation network combine deep and shallow features?",
                _c("Deep ones tell what, shallow ones exactly where", "Right: semantics from deep, "
                                                                      "localisation from shallow.")),
        Wording("What does each kind of feature add to a segmentation?",
                _c("Deep: the class; shallow: precise boundaries", "Right: 'what' and 'where'.")),
    ), (
        (_c("Shallow features see more: their fields are larger", "Deep ones have the larger fields."),
         _c("Deep features are cheaper to compute at inference", "Cost is not the reason."),
         _c("Both are needed for training, not for inference", "They are fused at inference too.")),
        (_c("Deep features keep the full input resolution", "Deep maps are the coarsest."),
         _c("Shallow ones carry the class, deep ones the edges", "The other way round."),
         _c("Combining them lowers the number of parameters", "It adds layers.")),
    ), "Deep: large receptive field, coarse, semantic. Shallow: small receptive field, fine, local."),
    ChoiceItem("features.characteristics", "deep-shallow", (
        Wording("Which describes the features of a deep layer of the encoder?",
                _c("Coarse, with large receptive fields, semantic", "Right: they know the class, not the exact "
                                                                    "edge.")),
        Wording("A feature map after the fourth pooling, compared with one after the first convolution, is:",
                _c("Coarser, with a larger field, more abstract", "Right: deep features are coarse and "
                                                                  "semantic.")),
    ), (
        (_c("Full resolution, and sensitive to the finest edges", "That describes shallow features."),
         _c("Smaller receptive fields than the first layer has", "The field grows with depth."),
         _c("The same content as the input, with more channels", "The content becomes more abstract.")),
        (_c("Finer in resolution, because it has more channels", "Channels do not add resolution."),
         _c("Independent of the input image it was computed from", "They depend on the image."),
         _c("Limited to the colours of the pixels it covers", "Colour is what the first layers see.")),
    ), "With depth the maps shrink, the fields grow, and the features turn from edges to parts and objects."),
    # --- nomenclature: upsampling ---------------------------------------------------------------------------
    ChoiceItem("names.transposed", "names-upsampling", (
        Wording("The literature uses several names for the learnable upsampling layer. Which list is right?",
                _c("Transposed, deconvolution, fractionally strided", "Right: the names this course uses.")),
        Wording("In this course, which other names does the transposed convolution have?",
                _c("Deconvolution and fractionally strided convolution",
                   "Right (U-Net's paper also says up-convolution); atrous means dilated.")),
    ), (
        (_c("Atrous convolution and dilated convolution", "Those are the dilated convolution's names."),
         _c("Bilinear upsampling and bilinear interpolation", "Those are the fixed upsampling."),
         _c("Depthwise convolution and pointwise convolution", "Those are other layers.")),
        (_c("Max-unpooling and nearest-neighbour upsampling", "Other upsampling methods."),
         _c("Atrous convolution and deconvolution", "Atrous is the dilated convolution."),
         _c("Short-cut convolution and skip-connection", "Those are merges.")),
    ), "Transposed convolution = deconvolution = fractionally strided convolution."),
    ChoiceItem("names.two-upsamplings", "names-upsampling", (
        Wording("Which two upsampling layers does the session use, and which of them learns?",
                _c("Bilinear upsampling (fixed), transposed convolution (learned)", "Right: interpolation versus "
                                                                           "learnable upsampling.")),
        Wording("Of the course's two upsampling layers, which has trainable weights?",
                _c("The transposed convolution; bilinear is fixed", "Right: bilinear upsampling is known from "
                                                                    "signal processing.")),
    ), (
        (_c("Dilated convolution and max-pooling; both learn", "Neither upsamples."),
         _c("Bilinear upsampling learns; the transposed one is fixed", "The other way round."),
         _c("Neither: both are fixed interpolations", "The transposed convolution learns its kernel.")),
        (_c("Atrous convolution and bilinear upsampling; neither", "Atrous does not upsample."),
         _c("Nearest-neighbour and bicubic upsampling; bicubic", "Not the course's two layers."),
         _c("Both learn; they differ only in their kernel sizes", "Bilinear upsampling has no weights.")),
    ), "Bilinear upsampling: fixed; transposed convolution: learned (and can start bilinear)."),
    # --- nomenclature: merges and dilation ------------------------------------------------------------------
    ChoiceItem("names.atrous", "names-merges", (
        Wording("Which layer is an atrous convolution?",
                _c("A dilated convolution: taps spread d apart", "Right: atrous = dilated.")),
        Wording("Atrous convolution is another name for which layer?",
                _c("The dilated convolution, with gaps between taps", "Right: 'à trous', with holes.")),
    ), (
        (_c("A transposed convolution, which upsamples", "That is the learnable upsampling."),
         _c("A convolution with a stride of 2 or more", "Strided, not dilated."),
         _c("A 1 × 1 convolution that mixes the channels", "No gaps in a 1 × 1 kernel.")),
        (_c("A convolution over every second channel only", "Dilation spreads taps in space."),
         _c("A convolution that puts zeros between its inputs", "That is the transposed one."),
         _c("A pooling layer with holes between its pixels", "It is a convolution.")),
    ), "Dilated = atrous: the kernel covers d(k - 1) + 1 pixels with k weights per side."),
    ChoiceItem("names.skip-shortcut", "names-merges", (
        Wording("In this course's nomenclature, what operation does a skip-connection perform, and a short-cut?",
                _c("Skip-connection: concatenate; short-cut: sum", "Right: U-Net uses skips, FCN short-cuts.")),
        Wording("As this course names the merges of U-Net and FCN, what do a skip-connection and a short-cut do?",
                _c("A skip stacks channels, a short-cut adds maps",
                   "Right: two 64-channel maps give 128 channels after a skip, 64 after a short-cut.")),
    ), (
        (_c("Skip-connection: sum; short-cut: concatenation", "The other way round."),
         _c("Both concatenate the maps along the channels", "A short-cut sums."),
         _c("Both add the two maps element by element", "A skip-connection concatenates.")),
        (_c("Both multiply the two maps element by element", "Neither multiplies."),
         _c("Skip-connection: maximum; short-cut: average", "Neither is a pooling."),
         _c("They are two names for one and the same sum", "Different operations in this course.")),
    ), "Skip-connection = concatenation (U-Net); short-cut = summation (FCN)."),
]


# --- numeric families: PyTorch computes each answer ---------------------------------------------------------

def _side(layer: nn.Module, size: int) -> int:
    with torch.no_grad():
        return int(layer(torch.zeros(1, 1, size, size)).shape[-1])


def _stack(layers, pooling=nn.MaxPool2d) -> nn.Sequential:
    modules = []
    for kind, k, s, p in layers:
        modules.append(nn.Conv2d(1, 1, k, stride=s, padding=p) if kind == "conv" else pooling(k, s, p))
    return nn.Sequential(*modules)


def _describe(layers) -> str:
    return ", then ".join(f"a {k} × {k} {'convolution' if kind == 'conv' else 'max-pooling'} with stride {s} "
                          f"and padding {p}" for kind, k, s, p in layers)


def _total_stride(parameters: dict) -> int:
    """Measured: how far apart, in input pixels, the receptive fields of two neighbouring outputs lie."""
    stack = _stack(parameters["layers"], nn.AvgPool2d)  # max-pooling would route each gradient to one pixel
    with torch.no_grad():
        for module in stack:
            for name, tensor in module.named_parameters():
                tensor.fill_(1.0 if name == "weight" else 0.0)
    x = torch.ones(1, 1, 256, 256, requires_grad=True)
    out = stack(x)
    middle = out.shape[-2] // 2
    firsts = []
    for row in (middle, middle + 1):
        (grad,) = torch.autograd.grad(out[0, 0, row, out.shape[-1] // 2], x, retain_graph=True)
        firsts.append(int((grad[0, 0].abs().sum(1) > 0).nonzero()[0]))
    return firsts[1] - firsts[0]


def _unet_side(parameters: dict) -> int:
    from seglab.models.unet import UNet

    model = UNet(1, 2, depth=parameters["depth"], base_channels=2, padding="valid", batch_norm=False).to("meta")
    return int(model(torch.empty(1, 1, parameters["size"], parameters["size"], device="meta")).shape[-1])


def _span(parameters: dict) -> int:
    size = 64  # an unpadded convolution loses span - 1 pixels
    return size - _side(nn.Conv2d(1, 1, parameters["k"], dilation=parameters["d"]), size) + 1


def _unet_inputs(depth: int) -> list[int]:
    from seglab.models.unet import unet_input_size

    return [unet_input_size(out, depth) for out in range(60, 200, 28)]  # valid tiles (chosen, not answered)


_RF_STACKS = [
    (("conv", 3, 1, 1), ("conv", 3, 1, 1), ("pool", 2, 2, 0), ("conv", 3, 1, 1)),
    (("conv", 5, 1, 2), ("pool", 2, 2, 0), ("conv", 3, 1, 1), ("conv", 3, 1, 1)),
    (("conv", 3, 1, 1), ("pool", 2, 2, 0), ("conv", 3, 1, 1), ("pool", 2, 2, 0)),
    (("conv", 3, 1, 0), ("conv", 3, 1, 0), ("pool", 2, 2, 0), ("conv", 5, 1, 0)),
    (("conv", 7, 1, 3), ("pool", 2, 2, 0), ("conv", 3, 1, 1), ("conv", 3, 1, 1)),
    (("conv", 3, 1, 1), ("pool", 3, 2, 1), ("conv", 3, 1, 1), ("conv", 3, 1, 1)),
]
_STRIDE_STACKS = [
    (("conv", 3, 1, 1), ("pool", 2, 2, 0), ("conv", 3, 2, 1), ("pool", 2, 2, 0)),
    (("conv", 7, 2, 3), ("pool", 3, 2, 1), ("conv", 3, 1, 1), ("pool", 2, 2, 0)),
    (("conv", 3, 2, 1), ("conv", 3, 1, 1), ("pool", 2, 2, 0), ("conv", 3, 2, 1)),
    (("conv", 5, 1, 2), ("pool", 2, 2, 0), ("pool", 2, 2, 0), ("conv", 3, 3, 1)),
    (("conv", 3, 1, 1), ("pool", 2, 2, 0), ("conv", 3, 1, 1), ("conv", 3, 2, 1)),
    (("conv", 3, 2, 1), ("pool", 2, 2, 0), ("conv", 3, 2, 1), ("conv", 1, 1, 0)),
]

ITEMS += [
    NumericFamily(
        "conv-output", "conv-output",
        "A feature map of {i} × {i} pixels goes through a {k} × {k} convolution with stride {s} and padding "
        "{p} on each side. What is the side of the output map?",
        tuple({"i": i, "k": k, "s": 2, "p": k // 2} for i, k in
              ((45, 3), (57, 5), (63, 7), (71, 3), (85, 5), (99, 7), (101, 3), (117, 5), (125, 7), (37, 5))),
        lambda q: _side(nn.Conv2d(1, 1, q["k"], stride=q["s"], padding=q["p"]), q["i"]),
        "floor((i + 2p - k) / s) + 1 = floor(({i} + 2·{p} - {k}) / {s}) + 1 = {answer}."),
    NumericFamily(
        "pool-output", "pool-output",
        "A map of {i} × {i} pixels goes through a {k} × {k} max-pooling with stride {s} and no padding. What is "
        "the side of the pooled map?",
        tuple({"i": i, "k": 3, "s": 2} for i in (28, 34, 40, 46, 52, 58, 64, 70, 76, 82)),
        lambda q: _side(nn.MaxPool2d(q["k"], q["s"]), q["i"]),
        "floor((i - k) / s) + 1 = floor(({i} - {k}) / {s}) + 1 = {answer}."),
    NumericFamily(
        "transposed-output", "transposed-output",
        "A transposed convolution with kernel {k}, stride {s}, padding {p} and output_padding {op} gets a "
        "{i} × {i} map. What is the output side?",
        tuple({"i": i, "k": 4, "s": 3, "p": 1, "op": 2} for i in (7, 9, 12, 14, 17, 20, 23, 25, 28, 31)),
        lambda q: _side(nn.ConvTranspose2d(1, 1, q["k"], stride=q["s"], padding=q["p"], output_padding=q["op"]),
                        q["i"]),
        "(i - 1)s - 2p + k + output_padding = ({i} - 1)·{s} - 2·{p} + {k} + {op} = {answer}."),
    NumericFamily(
        "total-stride", "total-stride",
        "A network applies {stack}. Neighbouring output pixels are how many input pixels apart (the total stride)?",
        tuple({"layers": layers, "stack": _describe(layers)} for layers in _STRIDE_STACKS),
        _total_stride,
        "The total stride is the product of the layers' strides: {answer}."),
    NumericFamily(
        "receptive-field", "receptive-field",
        "A network applies {stack}. How many input pixels wide is the receptive field of one output pixel?",
        tuple({"layers": layers, "stack": _describe(layers)} for layers in _RF_STACKS),
        lambda q: measured_receptive_field(_stack(q["layers"]), width=64),
        "Each layer adds (k - 1) times the stride of the layers before it: {answer} pixels (padding does "
        "not change it)."),
    NumericFamily(
        "unet-sizes", "unet-sizes",
        "A U-Net as in the paper (two unpadded 3 × 3 convolutions per level, 2 × 2 max-pooling, 2 × 2 "
        "up-convolutions) with {depth} poolings gets a tile of {size} × {size} pixels. What is the side of "
        "its output segmentation map?",
        tuple({"depth": depth, "size": size} for depth in (3,) for size in _unet_inputs(3)),
        _unet_side,
        "Every 3 × 3 convolution takes 2 pixels, every pooling halves, every up-convolution doubles: {answer}."),
    NumericFamily(
        "dilated-span", "dilated-span",
        "A {k} × {k} convolution has dilation {d}. How many input pixels along one side does one application of "
        "its kernel span?",
        tuple({"k": k, "d": d} for k, d in ((3, 2), (3, 4), (3, 6), (5, 2), (5, 3), (3, 8), (5, 4), (7, 2))),
        _span,
        "d(k - 1) + 1 = {d}·({k} - 1) + 1 = {answer}."),
]
ITEMS = tuple(ITEMS)
