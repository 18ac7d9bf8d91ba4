#!/usr/bin/env bash
# Runs the README's commands with two phaseflow binaries and compares what they write, dataset by
# dataset (scripts/h5_compare.py), JSON and CSV byte for byte (timings excluded): the check that a
# refactoring changed no output.  Usage: scripts/compare_outputs.sh OLD_BINARY NEW_BINARY
set -uo pipefail
OLD=$1; NEW=$2
cd "$(dirname "$0")/.."
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
h5() { python3 scripts/h5_compare.py "$D/$1.old.h5" "$D/$1.new.h5"; }
both() { tag=$1; shift; "$OLD" "$@" -q -o "$D/$tag.old.h5" >/dev/null; "$NEW" "$@" -q -o "$D/$tag.new.h5" >/dev/null; h5 "$tag"; }
both lorenz simulate systems/lorenz.toml --points 10000 --pts-per-period 100 --burn-in 15 --rtol 1e-10 --atol 1e-10
both lorenz35 simulate lorenz --set rho=35 --ic 1,1,1 --method dopri5 --rtol 1e-8 --atol 1e-8
both l96 simulate lorenz96 --set dimension=40 --set f=8 --method rk4 --step 0.01
both ensemble simulate lorenz --ensemble 5 --seed 3 --points 300
both noise simulate rossler --noise 0.05,0.1,0.0 --points 500 --seed 9
both sde simulate systems/linear/bead_spring_2.toml --points 500 --seed 4
both embed simulate mackey_glass --embed 4 --burn-in 100 --points 500
both map simulate henon --points 700 --burn-in 10
both trap simulate trap --set v0=0.3 --burn-in 20 --t-end 100 --replicas 4 --seed 3
both abp simulate abp_mips --steps 2000 --every 500 --seed 1 --set N=256
for b in old new; do B=$OLD; [ $b = new ] && B=$NEW
  "$B" simulate abp_mips --set N=256 --steps 3000 --every 200 --seed 1 -q -o "$D/resume.$b.h5" --abort-after-frames 5 2>/dev/null
  "$B" simulate abp_mips --set N=256 --steps 3000 --every 200 --seed 1 -q -o "$D/resume.$b.h5" --resume
done
h5 resume
"$NEW" simulate systems/active/trap.toml --set N=4 --set k=0 --replicas 8 --burn-in 50 --t-end 400 --every 200 -q -o "$D/data.h5"
printf '[network]\nkind = "mlp"\nhidden = [16]\n\n[loss]\nsigma = 0.05\n\n[training]\nsteps = 60\nbatch = 32\nwarmup = 10\nema = 0.99\nlog_every = 10\ncheckpoint_every = 20\nseed = 1\n' > "$D/train.toml"
"$OLD" train "$D/train.toml" --data "$D/data.h5" -o "$D/model" -q
for b in old new; do B=$OLD; [ $b = new ] && B=$NEW
  "$B" score "$D/model" --data "$D/data.h5" -o "$D/score.$b.h5" -q >/dev/null
  "$B" epr --model "$D/model" --data "$D/data.h5" --maps "$D/maps.$b.h5" --flow-out "$D/flow.$b.h5" --json > "$D/epr.$b.json"
  "$B" invariants lorenz --t-end 100 --json | grep -v wall_seconds > "$D/inv.$b.json"
  "$B" series "$D/lorenz.old.h5" --json > "$D/series.$b.json"
  "$B" forecast bench --systems lorenz,rossler --models naive,nvar -q -o "$D/bench.$b" >/dev/null
  "$B" plot "$D/trap.old.h5" -o "$D/plot.$b.png" 2>/dev/null
done
h5 score; h5 maps; h5 flow
for f in epr.json inv.json series.json plot.png bench/leaderboard.csv; do
  a="$D/${f%%.*}.old.${f#*.}"; b="$D/${f%%.*}.new.${f#*.}"
  case $f in bench/*) a="$D/bench.old/${f#bench/}"; b="$D/bench.new/${f#bench/}";; esac
  cmp -s "$a" "$b" && echo "SAME $f" || echo "DIFFERENT $f"
done
