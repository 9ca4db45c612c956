#!/bin/bash
# The certified-training recipe study as it was run: RBFI 784-128-128-128-10 (^v^v), 8 epochs on
# the first 30,000 training images each (equal budget), certified accuracy per epoch on the first
# 1000 test images. Code: a snapshot of the working tree at 15:27 UTC on 2026-12-01 (commit
# 7ff5905 plus the lr schedule and the k/255 pixel scale, committed right after as 6a26d19 and
# 5abc1e7). Run it from the repository root.
export OMP_NUM_THREADS=2

R=runs/recipes
COMMON="--layers 128,128,128,10 --geometry ^v^v --epochs 8 --train-limit 30000 --test-limit 1000 --threads 2 --no-progress"
ADAM="--optimizer adam --lr 0.005 --lr-schedule cosine"
HINGE="--certified-eps 0.45 --certified-warmup 0 --certified-ramp 0 --certified-weight 1 --certified-loss clipped_hinge --certified-ce 0.05 --certified-ce-end 0.0002"
run() { name=$1; shift; echo "=== $name $(date -u +%T)"; rm -rf $R/$name; /usr/bin/time -f "$name wall %e s" timeout 300 python3 -m rbfi train $COMMON "$@" --out $R/$name; }
run default --certified-eps 0.35
run adam_cosine --certified-eps 0.35 $ADAM
run hinge_fixed045 $HINGE $ADAM
run ce_fixed045 --certified-eps 0.45 --certified-warmup 0 --certified-ramp 0 --certified-weight 1 --certified-ce 0.05 --certified-ce-end 0.0002 $ADAM
run hinge_u1 $HINGE $ADAM --u-bounds 1,1
run hinge_u001_1 $HINGE $ADAM --u-bounds 0.01,1
echo "=== done $(date -u +%T)"
# appended 15:42 UTC after the first results (Adam 0.005 and the fixed-eps hinge trailed the
# default): variations of the default recipe (AdaDelta lr 5, CE on margins, eps ramp) instead of
# the u variants of the hinge recipe (those two runs are stopped at their start).
run ada_cosine --certified-eps 0.35 --lr-schedule cosine
run eps045_ramp --certified-eps 0.45
run u001_1 --certified-eps 0.35 --u-bounds 0.01,1
run u1 --certified-eps 0.35 --u-bounds 1,1
echo "=== done (appended part) $(date -u +%T)"
# the clipped hinge (+ decaying clean CE) inside the default recipe (AdaDelta lr 5, eps ramp)
run hinge_ramp --certified-eps 0.35 --certified-loss clipped_hinge --certified-ce 0.05 --certified-ce-end 0.0002
echo "=== done (appended part 2) $(date -u +%T)"
# from a normally trained net (2 epochs, same 30k images), then the default recipe for 8 epochs
rm -rf $R/normal128; python3 -m rbfi train --layers 128,128,128,10 --geometry ^v^v --epochs 2 --train-limit 30000 --test-limit 1000 --threads 2 --no-progress --out $R/normal128
run init_default --certified-eps 0.35 --init-from $R/normal128
echo "=== done (appended part 3) $(date -u +%T)"
