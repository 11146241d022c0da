"""Stand-in for InternVL's internvl/train/internvl_chat_finetune.py (tests only; stdlib only).

Run by the real torchrun, it takes the training script's arguments, checks what the launcher and
the job must provide, and prints transformers' Trainer log lines as the real script does, one per
step, then writes an adapter file into --output_dir.
"""

import argparse
import json
import os
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
for name in ("model_name_or_path", "conv_style", "output_dir", "meta_path", "per_device_train_batch_size",
             "gradient_accumulation_steps", "learning_rate", "use_llm_lora", "deepspeed"):
    parser.add_argument(f"--{name}", required=True)
args, rest = parser.parse_known_args()
print(f"launched by torchrun: rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}, LAUNCHER={os.environ['LAUNCHER']}")
print(f"cwd={Path.cwd().name} conv_style={args.conv_style} batch={args.per_device_train_batch_size}x"
      f"{args.gradient_accumulation_steps} lora={args.use_llm_lora} other_args={len(rest)}")
meta = json.loads(Path(args.meta_path).read_text())
if not Path(args.deepspeed).is_file():
    sys.exit(f"no deepspeed config {args.deepspeed} in {Path.cwd()}")
print(f"run_name={args.output_dir},")
for step, name in enumerate(sorted(meta), start=1):
    print(f"{{'loss': {2.5 / step}, 'learning_rate': {4e-05 * step / 3}, 'epoch': {step / 3:.2f}}}", flush=True)
Path(args.output_dir, "adapter_model.safetensors").write_text("stand-in weights\n")
