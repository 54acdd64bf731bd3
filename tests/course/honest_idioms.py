"""Honest idioms from public course notebooks: what students write beside their answers (setup, magics,
shell commands, introspection, configuration). Each one must run as written and never cost points.
Each is our own short rewrite of an idiom seen in the notebook named by ``origin``."""

from __future__ import annotations

from typing import NamedTuple


class Idiom(NamedTuple):
    name: str  # short, unique, a valid Python identifier
    source: str  # the code, as a student types it
    origin: str  # where it was seen: "owner/repo:path" or a page address
    cell_magic: bool = False  # starts with %%: must be the first line of its cell


_EECS498 = "Polarisoo/eecs498-598-dlcv-wi2022:assignments/"
_CMU_HW1 = "HDLiter-Self-Study/CMU-11785:course_materials/HW1/HW1P2_F24_Starter_Notebook.ipynb"
_DTU = "DeepLearningDTU/02456-deep-learning-with-PyTorch:"
_I2DL = "YuxuanSnow/IN2346_I2DL:Bonus Exercise/"
_UVA = "phlippe/uvadlc_notebooks:docs/tutorial_notebooks/"
_KAGGLE8 = "aorursy/new-nb-8:"
_KAGGLE3 = "aorursy/new-nb-3:"
_KAGGLE_OLD = "aorursy/old-nb:"
_KAGGLE_SIM = "simisimon/kaggle-notebooks:converted_notebooks/"
_CMU_REC = "cmudeeplearning11785/Fall2018-tutorials:"
_FASTAI = "fastai/course22:"
_FASTAI2 = "fastai/course22p2:nbs/"
_MAGICS_PAGE = "https://ipythonbook.com/magic-commands.html"


IDIOMS = [
    # --- IPython magics and notebook setup -------------------------------------------------------------
    Idiom("autoreload", "%load_ext autoreload\n%autoreload 2", _EECS498 + "a1-pytorch-knn/knn.ipynb"),
    Idiom("matplotlib_inline", "%matplotlib inline", _DTU + "3_Feedforward_PyTorch/3.3-FFN-Half-Moon.ipynb"),
    Idiom(
        "retina_figures",
        '%matplotlib inline\n%config InlineBackend.figure_format = "retina"',
        _KAGGLE_OLD + "inherentlysequential_wip-tutorial-eda-feateng-model.py",
    ),
    Idiom(
        "completer_no_jedi",
        "%config Completer.use_jedi = False",
        _KAGGLE_SIM + "final_notebooks_tabular-playground-series-jan-2021_kaggle-day-02-kaggle-playground-1ipynb.py",
    ),
    Idiom(
        "show_all_expressions",
        'from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.ast_node_interactivity = "all"',
        _KAGGLE8 + "subhavkataria_dog-breed-classification.py",
    ),
    Idiom("cd_here", "%cd .", "kantarcise/cs231n:src/assignment1/collect_submission.ipynb"),
    Idiom(
        "env_magic",
        "%env TOKENIZERS_PARALLELISM=false\n%env TOKENIZERS_PARALLELISM",
        _KAGGLE_SIM + "final_notebooks_titanic_ai4code-deberta-inferenceipynb.py",
    ),
    Idiom("who_magic", "lr = 1e-3\nepochs = 2\n%who", _MAGICS_PAGE),
    Idiom("pwd_magic", "%pwd", _MAGICS_PAGE),
    Idiom("time_line_magic", "%time squares = [i * i for i in range(1000)]", _FASTAI2 + "01_matmul.ipynb"),
    Idiom(
        "timeit_line_magic",
        "%timeit -n1 -r1 sum(range(1000))",
        _EECS498 + "a5-rnn-transformers/Transformers.ipynb",
    ),
    Idiom(
        "capture_cell",
        "%%capture\nimport numpy as np\nprint(np.__version__)",
        _KAGGLE8 + "suchikeisan_wikipedia-traffic-exponential-fit.py",
        cell_magic=True,
    ),
    Idiom(
        "time_cell",
        "%%time\ntotal = 0\nfor i in range(10000):\n    total += i * i",
        _FASTAI2 + "18_fid.ipynb",
        cell_magic=True,
    ),
    Idiom(
        "writefile_cell",
        "%%writefile helper.py\ndef add(a, b):\n    return a + b",
        "mrdbourke/pytorch-deep-learning:extras/solutions/05_pytorch_going_modular_exercise_solutions.ipynb",
        cell_magic=True,
    ),
    Idiom(
        "writefile_then_import",
        'get_ipython().run_cell_magic("writefile", "helper.py", "def add(a, b):\\n    return a + b\\n")\n'
        "import helper\n"
        "print(helper.add(2, 3))",
        "mrdbourke/pytorch-deep-learning:extras/solutions/05_pytorch_going_modular_exercise_solutions.ipynb",
    ),
    Idiom(
        "history_reads",
        "print(len(In), len(Out))\nprevious_input = _i\nlast_result = _\n",
        _MAGICS_PAGE,
    ),
    # --- shell commands --------------------------------------------------------------------------------
    Idiom(
        "nvidia_smi",
        '!nvidia-smi || echo "no GPU on this machine"',
        "HDLiter-Self-Study/CMU-11785:course_materials/HW0/P2/hw0p2-easy-difficulty.ipynb",
    ),
    Idiom("pip_version", "!pip3 --version", "topazeblue/notebooks:Versions.py"),
    Idiom("shell_ls", "!ls", "YM2025/CMU_11785_2024S:HW3P2/IDL_S23_HW3_SilviaGu.ipynb"),
    Idiom("shell_pwd", "!pwd", _FASTAI + "01-jupyter-notebook-101.ipynb"),
    Idiom(
        "shell_mkdir",
        "!mkdir -p data\n!ls data",
        "mrdbourke/pytorch-deep-learning:extras/04_custom_data_creation.ipynb",
    ),
    # --- imports, versions, environment ----------------------------------------------------------------
    Idiom("torch_version", "import torch\nprint(torch.__version__)", _EECS498 + "a1-pytorch-knn/pytorch101.ipynb"),
    Idiom(
        "platform_info",
        "import platform\nprint(platform.platform())\nprint(platform.python_version())",
        _I2DL + "exercise_11/1_recurrent_neural_networks.ipynb",
    ),
    Idiom(
        "device_select",
        'import torch\ndevice = torch.device("cuda" if torch.cuda.is_available() else "cpu")\nprint(device)',
        _DTU + "7_Unsupervised/7.2-EXE-variational-autoencoder.ipynb",
    ),
    Idiom(
        "empty_cuda_cache",
        "import gc\nimport torch\ngc.collect()\ntorch.cuda.empty_cache()",
        _CMU_HW1,
    ),
    Idiom(
        "gc_collect",
        "import gc; gc.collect()",
        "HDLiter-Self-Study/CMU-11785:course_materials/HW2/HW2P2_Starter_F24_Final.ipynb",
    ),
    Idiom(
        "colab_in_sys_modules",
        'import sys\nIN_COLAB = "google.colab" in sys.modules\nif IN_COLAB:\n    from google.colab import drive\n'
        'print("colab:", IN_COLAB)',
        _KAGGLE8 + "vh1981_severstal-sdd-defect-classify-model.py",
    ),
    Idiom(
        "colab_try_import",
        "try:\n    import google.colab  # noqa: F401\n    IN_COLAB = True\nexcept ImportError:\n    IN_COLAB = False\n"
        "print(IN_COLAB)",
        "gretelai/navigator-helpers:navigator_helpers/tasks/text_to_code/__init__.py",
    ),
    Idiom(
        "colab_locale_fix",
        'import locale\nlocale.getpreferredencoding = lambda *args: "UTF-8"',
        "YM2025/CMU_11785_2024S:HW4P1/Transformer/Lab_11_Transformers_Language.ipynb",
    ),
    Idiom(
        "os_environ_set",
        'import os\nos.environ["TOKENIZERS_PARALLELISM"] = "false"',
        _DTU + "5_Transformers/5_1_EXE_deep_learning_with_transformers.ipynb",
    ),
    Idiom("sys_path_append", 'import sys\nsys.path.append("..")', _EECS498 + "a1-pytorch-knn/knn.ipynb"),
    Idiom(
        "filter_warnings",
        'import warnings\nwarnings.filterwarnings("ignore")',
        _I2DL + "exercise_05/2a_StochasticGradientDescent.ipynb",
    ),
    Idiom(
        "logging_setup",
        'import logging\nlogging.basicConfig(level=logging.INFO)\nlogging.getLogger(__name__).info("start")',
        "d2l-ai/d2l-pytorch-colab:chapter_hyperparameter-optimization/rs-async.ipynb",
    ),
    Idiom(
        "importlib_reload",
        'import importlib\nfrom pathlib import Path\nPath("my_utils.py").write_text("SCALE = 2\\n")\n'
        "import my_utils\nimportlib.reload(my_utils)",
        _KAGGLE8 + "takbull_bert-joint.py",
    ),
    Idiom(
        "psutil_memory",
        'import psutil\nmem = psutil.virtual_memory()\nprint(f"RAM available: {mem.available / 1e9:.1f} GB")',
        _KAGGLE8 + "system32_using-inception-v3-aptos.py",
    ),
    Idiom(
        "cpu_count",
        "import multiprocessing\nimport os\nNUM_WORKERS = min(2, multiprocessing.cpu_count())\nprint(os.cpu_count())",
        _KAGGLE8 + "syxuming_pytorch-training-inference-efficientnet-baseline.py",
    ),
    Idiom(
        "subprocess_echo",
        'import subprocess\nsubprocess.run(["echo", "hi"], check=True)',
        _EECS498 + "a4-object-detection/one_stage_detector.ipynb",
    ),
    # --- seeds and torch configuration -----------------------------------------------------------------
    Idiom(
        "seeds",
        "import random\nimport numpy as np\nimport torch\nrandom.seed(0)\nnp.random.seed(0)\ntorch.manual_seed(0)",
        _EECS498 + "a1-pytorch-knn/knn.ipynb",
    ),
    Idiom(
        "seed_everything",
        "import os, random\n"
        "import numpy as np, torch\n"
        "def seed_everything(seed=42):\n"
        '    os.environ["PYTHONHASHSEED"] = str(seed)\n'
        "    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)\n"
        "seed_everything(42)",
        _KAGGLE8 + "subhajitbarh_inference-model.py",
    ),
    Idiom(
        "cudnn_flags",
        "import torch\ntorch.backends.cudnn.benchmark = True\ntorch.backends.cudnn.deterministic = False",
        _EECS498 + "a3-neural-networks/convolutional_networks.ipynb",
    ),
    Idiom(
        "num_threads",
        "import torch\ntorch.set_num_threads(1)\nprint(torch.get_num_threads())",
        "willxxy/python-tools:torch_tricks.py",
    ),
    Idiom(
        "torch_printoptions",
        "import torch\ntorch.set_printoptions(precision=4, linewidth=140, sci_mode=False)",
        _FASTAI + "05-linear-model-and-neural-net-from-scratch.ipynb",
    ),
    Idiom(
        "numpy_printoptions",
        "import numpy as np\nnp.set_printoptions(precision=3, suppress=True)",
        _FASTAI + "slides/nlp-intro.ipynb",
    ),
    Idiom(
        "detect_anomaly_off",
        "import torch\ntorch.autograd.set_detect_anomaly(False)",
        _KAGGLE_SIM + "final_notebooks_siim-acr-pneumothorax-segmentation_new-caps-21-7ipynb.py",
    ),
    Idiom(
        "pil_truncated_images",
        "from PIL import ImageFile\nImageFile.LOAD_TRUNCATED_IMAGES = True",
        _KAGGLE8 + "tcapelle_fastai-airbus-binary.py",
    ),
    # --- plotting and display --------------------------------------------------------------------------
    Idiom(
        "rcparams",
        "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (10.0, 8.0)\n"
        "plt.rcParams['image.interpolation'] = 'nearest'\nplt.rcParams['image.cmap'] = 'gray'",
        _EECS498 + "a1-pytorch-knn/knn.ipynb",
    ),
    Idiom(
        "plt_style",
        'import matplotlib.pyplot as plt\nplt.style.use("ggplot")',
        _DTU + "7_Unsupervised/7.3-generative-adversarial-networks.ipynb",
    ),
    Idiom(
        "display_html",
        "from IPython.display import display, HTML, clear_output\n"
        'display(HTML("<b>epoch 1 done</b>"))\nclear_output(wait=True)',
        _DTU + "7_Unsupervised/7.1-autoencoder.ipynb",
    ),
    Idiom(
        "tqdm_auto",
        'from tqdm.auto import tqdm\nfor step in tqdm(range(3), desc="epochs"):\n    pass',
        _CMU_HW1,
    ),
    Idiom(
        "stdout_progress",
        'import sys\nfor step in range(3):\n    sys.stdout.write(f"\\rProgress {step + 1}/3")\n'
        "    sys.stdout.flush()\nprint()",
        _KAGGLE8 + "tonyder_helloworld.py",
    ),
    # --- timing -----------------------------------------------------------------------------------------
    Idiom(
        "time_time",
        'import time\ntic = time.time()\n_ = sum(range(10000))\ntoc = time.time()\nprint(f"took {toc - tic:.4f}s")',
        _EECS498 + "a1-pytorch-knn/knn.ipynb",
    ),
    # --- introspection ---------------------------------------------------------------------------------
    Idiom(
        "inspect_signature",
        "import inspect\nimport torch.nn as nn\nprint(inspect.signature(nn.Conv2d.__init__))",
        _KAGGLE_OLD + "mithrillion_a-few-python-tricks-to-mod-sklearn.py",
    ),
    Idiom(
        "simple_namespace_vars",
        "from types import SimpleNamespace\nargs = SimpleNamespace(lr=1e-3, epochs=2, batch_size=32)\n"
        "print(vars(args))",
        _UVA + "tutorial5/Inception_ResNet_DenseNet.ipynb",
    ),
    Idiom(
        "vars_of_object",
        "class Example:\n    def __init__(self):\n        self.text = 'hi'\n        self.label = 1\n"
        "print(vars(Example()))",
        _KAGGLE8 + "talha1503_quora-question-pairs-bi-lstm-pytorch.py",
    ),
    Idiom(
        "module_dict",
        "import torch.nn as nn\nm = nn.Linear(2, 2)\nprint(list(m.__dict__['_parameters'].keys()))",
        _KAGGLE8 + "ssfailearning_animal-gan.py",
    ),
    Idiom(
        "getattr_nn_computed",
        'import torch.nn as nn\ndim = 2\nconv_cls = getattr(nn, f"Conv{dim}d")\n'
        'act = getattr(nn, "relu".replace("relu", "ReLU"))()\nlayer = conv_cls(1, 4, kernel_size=3)',
        "nwpusunyue/msc-project:path_rnn_v2/util/activations.py",
    ),
    Idiom(
        "getattr_default",
        'import time\ngetattr(time, "tzset", lambda: None)()\nwidth = getattr(object(), "width", 64)',
        _EECS498 + "a4-object-detection/one_stage_detector.ipynb",
    ),
    Idiom(
        "setattr_own_object",
        "class Blocks:\n    pass\nnet = Blocks()\nfor i in range(3):\n    setattr(net, f'blk_{i}', i * 2)\n"
        "print(net.blk_2)",
        "d2l-ai/d2l-pytorch-colab:chapter_computer-vision/ssd.ipynb",
    ),
    Idiom(
        "type_name",
        "import torch.nn as nn\nfor layer in nn.Sequential(nn.Linear(2, 2), nn.ReLU()):\n"
        "    print(type(layer).__name__)",
        _FASTAI2 + "11_initializing.ipynb",
    ),
    Idiom(
        "isinstance_checks",
        "import torch.nn as nn\nm = nn.Conv2d(1, 1, 3)\nif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):\n"
        "    print('conv layer')",
        _CMU_REC + "recitation-11/dcgan_mnist_pytorch.ipynb",
    ),
    Idiom(
        "globals_lookup",
        "def relu(x):\n    return max(x, 0)\nact_name = 'relu'\nact_fn = globals()[act_name]\nprint(act_fn(-1))",
        _FASTAI2 + "09_learner.ipynb",
    ),
    Idiom(
        "sys_getsizeof",
        "import sys\nx = list(range(100))\nprint(sys.getsizeof(x))",
        _KAGGLE8 + "takanobu0210_pubg-eda-lightgbm.py",
    ),
    # --- standard library helpers ----------------------------------------------------------------------
    Idiom(
        "pickle_roundtrip",
        "import pickle\nwith open('store.pkl', 'wb') as f:\n    pickle.dump({'acc': 0.9}, f)\n"
        "with open('store.pkl', 'rb') as f:\n    stats = pickle.load(f)",
        _CMU_REC + "recitation-0/Python for Deep Learning.ipynb",
    ),
    Idiom(
        "json_dumps",
        "import json\nmetrics = {'loss': 0.25, 'acc': 0.9}\nprint(json.dumps(metrics, indent=4))",
        _KAGGLE8 + "steverab_m5-forecasting-competition-gluonts-template.py",
    ),
    Idiom(
        "functools_partial",
        "from functools import partial\ndef quad(a, b, c, x):\n    return a * x**2 + b * x + c\n"
        "f = partial(quad, 1, 0, 0)",
        _FASTAI + "04-how-does-a-neural-net-really-work.ipynb",
    ),
    Idiom(
        "lru_cache_helper",
        "from functools import lru_cache\n@lru_cache(maxsize=None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "print(fib(20))",
        _KAGGLE8 + "yakolle_quora-basic-analysis.py",
    ),
    Idiom(
        "deepcopy_model",
        "import copy\nimport torch.nn as nn\nmodel = nn.Linear(3, 1)\nbest_model = copy.deepcopy(model)",
        _DTU + "2_Feedforward_Python/2.2-FNN-NumPy.ipynb",
    ),
    Idiom(
        "collections_helpers",
        "from collections import Counter, defaultdict, namedtuple\nPoint = namedtuple('Point', ['x', 'y'])\n"
        "counts = Counter('hello')\nhist = defaultdict(list)\nhist['loss'].append(0.5)",
        "d2l-ai/d2l-pytorch-colab:chapter_appendix-tools-for-deep-learning/utils.ipynb",
    ),
    Idiom(
        "dataclass_config",
        "from dataclasses import dataclass\n@dataclass\nclass TrainConfig:\n    lr: float = 1e-3\n    epochs: int = 2\n"
        "cfg = TrainConfig()",
        _KAGGLE3 + "francoisdubois_dcgan-keras.py",
    ),
    Idiom(
        "typing_annotations",
        "from typing import List, Optional, Tuple\nimport torch\ndef split(x: torch.Tensor, k: Optional[int] = None)"
        " -> Tuple[List[int], int]:\n    return [], 0\nparts, n = split(torch.zeros(3))",
        _DTU + "4_Convolutional/4.3-CNN-transfer.ipynb",
    ),
    Idiom(
        "assert_messages",
        "import torch\nx = torch.zeros(4, 3)\nassert x.shape == (4, 3), f'unexpected shape {x.shape}'\n"
        "assert torch.allclose(x, torch.zeros_like(x)), 'values differ'",
        _DTU + "2_Feedforward_Python/2.1-EXE-FNN-AutoDif-Nanograd.ipynb",
    ),
    Idiom(
        "try_except_message",
        "try:\n    ratio = 1 / 0\nexcept ZeroDivisionError as err:\n    print('skipping:', err)\n"
        "    ratio = float('nan')\nprint(ratio)",
        _KAGGLE8 + "utsav7vanodiya_notebookf89bcbff3f.py",
    ),
    Idiom(
        "traceback_print_exc",
        "import traceback\ntry:\n    int('not a number')\nexcept ValueError:\n    traceback.print_exc()",
        _KAGGLE3 + "felipemello_features-for-top-5-lb-with-nn-or-lgb.py",
    ),
    Idiom(
        "redirect_stdout",
        "import contextlib\nimport io\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n    print('noisy')\n"
        "print(len(buf.getvalue()))",
        "ubco-db/EmbedDB:amalgamation/tests/test_helper_functions.py",
    ),
    Idiom(
        "makedirs_exist_ok",
        "import os\nos.makedirs('models', exist_ok=True)\nprint(os.listdir('.'))",
        _I2DL + "exercise_10/1_segmentation_nn.ipynb",
    ),
    Idiom(
        "pathlib_paths",
        "from pathlib import Path\ndata_dir = Path('data')\ndata_dir.mkdir(parents=True, exist_ok=True)\n"
        "print(sorted(p.name for p in data_dir.glob('*.npy')))",
        "mateuszk098/kaggle-notebooks:digit_recognizer/cnn_mnist.ipynb",
    ),
    Idiom(
        "shutil_copy_rmtree",
        "import os\nimport shutil\nos.makedirs('logs/run1', exist_ok=True)\nopen('logs/run1/a.txt', 'w').close()\n"
        "shutil.copy('logs/run1/a.txt', 'logs/a_copy.txt')\nshutil.rmtree('logs')",
        _I2DL + "exercise_08/1_BatchNormalization-optional.ipynb",
    ),
    Idiom(
        "tempfile_dir",
        "import os\nimport tempfile\nwith tempfile.TemporaryDirectory() as tmp:\n"
        "    path = os.path.join(tmp, 'x.txt')\n"
        "print(tempfile.gettempdir() != '')",
        _KAGGLE3 + "hamditarek_eda-topic-modeling-toxic-comment-jigsaw.py",
    ),
    Idiom(
        "thread_lock",
        "import threading\nlock = threading.Lock()\ncounter = 0\nwith lock:\n    counter += 1",
        _KAGGLE_OLD + "ezietsman_inception-v3-finetune.py",
    ),
    Idiom(
        "thread_start_join",
        "import threading\ndef run_in_background(fn):\n    t = threading.Thread(target=fn)\n"
        "    t.start()\n    t.join()\n"
        "run_in_background(lambda: None)",
        _KAGGLE3 + "festa78_distance-between-images-using-botttleneck.py",
    ),
    Idiom(
        "thread_pool_map",
        "from concurrent.futures import ThreadPoolExecutor\ndef square(v):\n    return v * v\n"
        "with ThreadPoolExecutor(max_workers=2) as ex:\n    squares = list(ex.map(square, range(4)))",
        _KAGGLE8 + "zhangjb_pytorch-baseline-model-0-916.py",
    ),
    Idiom(
        "underscore_loop",
        "for _i in range(2):\n    pass",
        _DTU + "5_Transformers/5_2_Recurrent_Neural_Networks_Nanograd.ipynb",
    ),
    # --- files in the working folder -------------------------------------------------------------------
    Idiom(
        "numpy_save_load",
        "import numpy as np\nnp.save('tensor.npy', np.arange(8).reshape(2, 4))\nloaded = np.load('tensor.npy')",
        _CMU_REC + "recitation-0/numpy.ipynb",
    ),
    Idiom(
        "torch_save_load",
        "import torch\nimport torch.nn as nn\nnet = nn.Linear(2, 1)\ntorch.save(net.state_dict(), 'checkpoint.pt')\n"
        "net.load_state_dict(torch.load('checkpoint.pt'))",
        _DTU + "5_Transformers/5_1_EXE_deep_learning_with_transformers.ipynb",
    ),
    # --- models --------------------------------------------------------------------------------------------
    Idiom(
        "module_subclass",
        "import torch, torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.fc = nn.Linear(2, 1)\n"
        "    def forward(self, x): return self.fc(x)\n"
        "out = Net()(torch.zeros(1, 2))",
        _DTU + "3_Feedforward_PyTorch/3.3-FFN-Half-Moon.ipynb",
    ),
    Idiom(
        "print_model_and_params",
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\nprint(model)\n"
        "print(sum(p.numel() for p in model.parameters()))",
        _FASTAI2 + "21_cifar10_and_wandb.ipynb",
    ),
    Idiom(
        "apply_init_fn",
        "import torch.nn as nn\ndef init_weights(m):\n    if isinstance(m, nn.Linear):\n"
        "        nn.init.xavier_uniform_(m.weight)\n"
        "net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())\nnet.apply(init_weights)",
        _I2DL + "exercise_07/2.tensorboard.ipynb",
    ),
    Idiom(
        "forward_hook_shapes",
        "import torch, torch.nn as nn\n"
        "net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())\n"
        "h = net[0].register_forward_hook(lambda m, i, o: print(type(m).__name__, tuple(o.shape)))\n"
        "with torch.no_grad(): net(torch.zeros(2, 4))\n"
        "h.remove()",
        _FASTAI2 + "10_activations.ipynb",
    ),
    Idiom(
        "eval_no_grad",
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(3, 1)\nmodel.eval()\nwith torch.no_grad():\n"
        "    preds = model(torch.ones(2, 3))",
        _DTU + "4_Convolutional/4.1-CNN-Introduction.ipynb",
    ),
    Idiom(
        "own_eval_function",
        "import torch\ndef eval(model, batches):\n    model.eval()\n    with torch.no_grad():\n"
        "        return [model(x) for x in batches]\nouts = eval(torch.nn.Linear(2, 1), [torch.zeros(1, 2)])",
        _CMU_HW1,
    ),
    Idiom(
        "own_compile_function",
        "def compile(layers):\n    return [f'{i}:{name}' for i, name in enumerate(layers)]\n"
        "summary = compile(['conv', 'relu'])",
        _CMU_HW1,
    ),
    Idiom(
        "own_watch_method",
        "import torch.nn as nn\n"
        "class Tracker:\n"
        "    def __init__(self): self.watched = []\n"
        '    def watch(self, model, log="all"): self.watched.append(type(model).__name__)\n'
        "tracker = Tracker()\n"
        "tracker.watch(nn.Linear(2, 2))",
        _CMU_HW1,
    ),
]
