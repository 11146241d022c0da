#!/bin/bash
# Stand-in for InternVL's internvl_chat/evaluate.sh (tests only): `evaluate.sh <checkpoint> caption-coco --dynamic`
# with GPUS in the environment; prints what it was given and the scores as InternVL's COCO caption
# evaluation prints them (pycocoevalcap's metric names).
set -e
echo "GPUS: ${GPUS}"
echo "CHECKPOINT: $1"
echo "DATASET: $2 $3"
[ -d "$1" ] || { echo "no checkpoint at $1" >&2; exit 1; }
echo "computing METEOR score..."
echo "Bleu_1: 0.812"
echo "Bleu_2: 0.655"
echo "Bleu_3: 0.512"
echo "Bleu_4: 0.394"
echo "METEOR: 0.301"
echo "ROUGE_L: 0.598"
echo "CIDEr: 1.328"
