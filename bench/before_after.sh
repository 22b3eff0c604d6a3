#!/bin/bash
# Runs the same tiny job through a checkout and records everything a user
# sees, so that two versions of tfglv can be compared with
# `python -m bench.compare_runs OUT_A OUT_B`.
#
#   bench/before_after.sh CHECKOUT OUT [RUN]
#
# Without RUN: trains `--config=tiny` for 40 steps into OUT/run. With RUN (a
# workdir of another version): copies it to OUT/run and only evaluates and
# exports it, which checks that the checkout reads that version's runs.
# Then: every evaluation task but fid, an export with TF Lite float32, and
# every signature called on fixed inputs (OUT/signatures.npz).
# $TRAIN_ARGS adds flags to the training command, e.g. TRAIN_ARGS=--model=glow.
set -e
CHECKOUT=$(cd "$1" && pwd); OUT=$(mkdir -p "$2" && cd "$2" && pwd); RUN=${3:-}
cd "$CHECKOUT"
if [ -z "$RUN" ]; then
  python -m train.main --config=tiny --workdir="$OUT/run" --num_steps=40 \
      --set train.checkpoint_every=20 --set train.eval_every=20 \
      --set train.sample_every=40 --set train.log_every=10 ${TRAIN_ARGS:-} \
      > "$OUT/train.stdout" 2> "$OUT/train.stderr"
else
  rm -rf "$OUT/run"; cp -r "$RUN" "$OUT/run"
  rm -rf "$OUT/run/eval" "$OUT"/run/*.png
fi
python -m train.evaluate --workdir="$OUT/run" \
    --task=bpd,samples,reconstructions,switch,interpolate,probe \
    --probe_max_train=512 --probe_max_test=256 \
    > "$OUT/eval.stdout" 2> "$OUT/eval.stderr"
python -m export.main --workdir="$OUT/run" --export_dir="$OUT/export" \
    --tflite=float32 --version=1 > "$OUT/export.stdout" 2> "$OUT/export.stderr"
python -m bench.signature_outputs "$OUT/export" "$OUT/signatures.npz"
