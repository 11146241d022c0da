"""Third-party model systems run as the upstream tools themselves: EasyAnimate training and inference,
InternVL's COCO-caption training and evaluation, VBench, the inception metrics, Trinity-RFT.

One module per tool; tools.py holds what they share (the environment, the GPU check, streaming a
tool's output into the job log). Before any job runs, ``easyanimate_requirements`` (and the ``*_requirements`` of the others) checks
the tool tree and its script, the environment manager and a GPU (``nvidia-smi -L``), and says what
to install when one is missing.
"""
