#!/bin/bash
# Stand-in for EasyAnimate's train_lora.sh (tests only): records its arguments and working directory,
# prints progress the way EasyAnimate's train.py does (accelerate + tqdm, redrawn with \r), and
# writes a LoRA file into the output directory, its 12th argument. STAND_IN_FAIL=1 makes it fail.
set -e
out="${12}"
printf '%s\n' "$@" > "$out/arguments.txt"
pwd > "$out/cwd.txt"
echo "11/24/2026 08:00:00 - INFO - __main__ - ***** Running training *****"
printf 'Steps:   0%%|          | 0/3 [00:00<?, ?it/s]'
printf '\rSteps:  33%%|###3      | 1/3 [00:01<00:02,  1.02s/it, step_loss=0.412, lr=0.0001]'
printf '\rSteps:  33%%|###3      | 1/3 [00:01<00:02,  1.02s/it, step_loss=0.412, lr=0.0001]'
printf '\rSteps:  67%%|######6   | 2/3 [00:02<00:01,  1.01s/it, step_loss=0.305, lr=5e-05]'
printf '\rSteps: 100%%|##########| 3/3 [00:03<00:00,  1.00s/it, step_loss=0.251, lr=2.5e-05]\n'
if [ "${STAND_IN_FAIL:-0}" = 1 ]; then echo "CUDA out of memory" >&2; exit 3; fi
echo "lora" > "$out/checkpoint-3.safetensors"
