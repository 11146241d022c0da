#!/bin/bash
# Stand-in for EasyAnimate's infer_lora.sh (tests only): records its arguments and writes one
# "video" per prompt line into the output directory, its 11th argument.
set -e
out="${11}"
printf '%s\n' "$@" > "$out/arguments.txt"
n=0
while IFS= read -r prompt; do
  n=$((n + 1)); echo "$prompt" > "$out/video_$n.mp4"
done < "$5"
echo "generated $n videos"
