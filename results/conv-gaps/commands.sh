#!/usr/bin/env bash
# What limits the certified RBFI CNNs (issue 25): certified accuracy on the first 2,000 training
# vs test images (fit vs generalisation), and sign PGD alone (margin loss, 100 steps, 2 restarts)
# vs the certificate on the same test images. Run 2026-12-05 on 2 cores, about 80 s each.
# (The strong suite's worst case, a stronger attack, is on each net's zoo card.)
for NAME in cert-cnn-0.3 cert-cnn-0.1; do
    python -m tools.certified_gaps zoo/$NAME --limit 2000 --eps 0.1,0.3 --out results/conv-gaps/$NAME.json
done
