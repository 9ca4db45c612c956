#!/usr/bin/env bash
# The conv RBFI recipe search (issue 25) as it was run: one net each, 1 thread, the first 30,000
# training images, 10 epochs, certified on the first 1,000 test images after every epoch.
# recipes.md / recipes.json / curves.png / panels.png: python -m tools.recipe_table runs/convx/{...} \
#     --out results/conv-recipes --title "Certified-training recipes for conv RBFI nets"
R="--threads 1 --no-progress --train-limit 30000 --limit 1000 --epochs 10"
S="--layers c16k5s2,c32k4s2,512,10"
ADAM="--optimizer adam --lr-schedule step --lr-decay-at 0.75,0.9"
rbfi train $S --geometry ^v^v --certified-eps 0.35 $R --out runs/convx/default
rbfi train $S --geometry ^v^v $ADAM --lr 1e-3 --certified-eps 0.4 $R --out runs/convx/adam1e3_e04
rbfi train $S --geometry ^v^v --certified-eps 0.3 $R --out runs/convx/eps03
rbfi train $S --geometry ^v^v --certified-eps 0.35 --certified-weight 0.8 $R --out runs/convx/w08
rbfi train $S --geometry ^^^v --certified-eps 0.35 $R --out runs/convx/geo_aaao
rbfi train $S --geometry ^v^v --certified-eps 0.35 --lr-schedule step --lr-decay-at 0.7,0.9 $R --out runs/convx/stepdecay
rbfi train --layers c32k5s2,c64k4s2,512,10 --geometry ^v^v --certified-eps 0.35 $R --out runs/convx/wide
rbfi train $S --geometry ^v^v --certified-eps 0.35 --certified-weight 1.0 $R --out runs/convx/w10
rbfi train $S --geometry ^v^v --certified-eps 0.4 --certified-weight 0.8 $R --out runs/convx/w08_e04
rbfi train $S --geometry ^v^^ --certified-eps 0.35 --certified-weight 0.8 $R --out runs/convx/w08_oand
rbfi train --layers c32k5s3,512,10 --geometry ^^v --certified-eps 0.35 --certified-weight 0.8 $R --out runs/convx/shallow1
rbfi train --layers c16k5s2,c32k4s2,10 --geometry ^vv --certified-eps 0.35 --certified-weight 0.8 $R --out runs/convx/shallow2
