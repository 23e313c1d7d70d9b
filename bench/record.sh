#!/usr/bin/env bash
# Records what a makemore binary prints and saves, for a refactor to compare before and after:
#   bench/record.sh BINARY OUT_DIR        then   diff -r OLD_OUT NEW_OUT
# Per command: stdout (time lines, `seconds` and `transfers` dropped), stderr, the exit code,
# and the sha256 of every file it wrote. GPU runs use whatever adapter wgpu picks.
set -uo pipefail
bin="$(realpath "$1")"
out="$(mkdir -p "$2" && realpath "$2")"
root="$(cd "$(dirname "$0")/.." && pwd)"
export NODEVICE_SELECT=1 XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Runs in a private mount namespace where a fresh directory sits at one fixed path, since
# checkpoints and `sample` name the absolute path of the input file.
here=/var/tmp/makemore-record
if [ -z "${RECORD_TMP:-}" ]; then
    RECORD_TMP="$(mktemp -d)"
    mkdir -p "$here"
    export RECORD_TMP
    unshare -m --propagation private bash -c 'mount --bind "$RECORD_TMP" '"$here"' && exec "$@"' \
        record "$0" "$bin" "$out"
    status=$?
    rm -rf "$RECORD_TMP"
    exit $status
fi
cd "$here"
cp "$root/data/names.txt" names.txt

# A 300-symbol vocabulary: 299 code points from U+0100, words drawn by a fixed recurrence.
python3 - > wide.txt <<'EOF'
x = 12345
for _ in range(3000):
    x = (x * 1103515245 + 12345) % 2**31
    n = 2 + x % 9
    w = ""
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2**31
        w += chr(0x100 + (x >> 8) % 299)
    print(w)
EOF
head -2000 names.txt > small.txt
printf 'emma\nolivia\nava\nzzzq\n' > few.txt

# run NAME ARGS...: one recorded command; its work dir is w/NAME unless ARGS name another.
run() {
    local name="$1"; shift
    "$bin" "$@" > "$out/$name.out" 2> "$out/$name.err"
    echo "exit $?" >> "$out/$name.out"
    sed -i -E '/^  [0-9]+ steps at .* steps\/s$/d; /^done in .* s$/d; /^transfers /d;
        s/"seconds":[0-9.e+-]+,?//; s/"transfers":\{[^}]*\},?//; s/,\}/}/' "$out/$name.out"
}
# files NAME DIR: the sha256 of every file a command left in DIR.
files() {
    (cd "$2" && find . -type f | sort | xargs -r sha256sum) > "$out/$1.files"
}

for dev in gpu cpu; do
    t() { local name="$1"; shift; run "train-$name-$dev" train --device "$dev" --work-dir "w-$name-$dev" "$@"; files "train-$name-$dev" "w-$name-$dev"; }
    t default
    t default-json --json
    t steps1000 --steps 1000
    t k2-split --context 2 --split 80/10/10 --eval-every 10 --steps 30
    t torch --rng torch --steps 300 --samples 5
    t examples --grad examples --steps 50
    t onehot --one-hot --loss explicit --grad examples --steps 20
    t adamw --optimizer adamw --batch-size 256 --steps 100
    t adamw-json --optimizer adamw --batch-size 256 --steps 100 --json
    t k3 --context 3 --steps 30
    t wide --input wide.txt --steps 20
    t wide-k2 --input wide.txt --context 2 --steps 5 --grad examples
    t names-file --input names.txt --steps 20
    t small-split-json --input small.txt --split 80/10/10 --steps 20 --json
    t lr-huge --input small.txt --lr 1e9 --steps 50
    mkdir -p "w-resume-$dev"
    run "train-resume1-$dev" train --device "$dev" --work-dir "w-resume-$dev" --steps 20
    run "train-resume2-$dev" train --device "$dev" --work-dir "w-resume-$dev" --steps 20 --resume
    files "train-resume-$dev" "w-resume-$dev"
    run "lecture-$dev" lecture --device "$dev" --work-dir "w-lecture-$dev"
    files "lecture-$dev" "w-lecture-$dev"
    run "lecture-json-$dev" lecture --device "$dev" --work-dir "w-lecture-$dev" --json
    run "lecture-ch8-$dev" lecture --device "$dev" --work-dir "w-lecture-$dev" --chapter softmax
    run "sweep-$dev" sweep --device "$dev" --steps 10
    run "sweep-neural-json-$dev" sweep --device "$dev" --model neural --steps 10 --json
done

w=w-default-gpu
run sample sample --work-dir $w
run sample-tuned sample --work-dir $w --temperature 0.5 --top-k 5 --prefix ka --num 20
run sample-count-torch sample --work-dir $w --model count --rng torch --json
run sample-k2 sample --work-dir w-k2-split-gpu --num 30
run sample-wide sample --work-dir w-wide-gpu
run eval-words eval --work-dir $w --word emma --word zzz --word a
run eval-words-neural eval --work-dir $w --model neural --word emma --json
run eval-input eval --work-dir $w --input names.txt
run eval-input-pairs eval --work-dir $w --input few.txt --pairs --json
run plot plot counts --work-dir $w -o counts.svg -o counts.png
run plot-loss plot loss --work-dir $w -o loss.svg
sha256sum counts.svg counts.png loss.svg > "$out/plot.files"
WGPU_BACKEND=vulkan run check-vulkan check --json
sed -i -E 's/"(seconds|worst_over_tolerance)":[^,}]*,?//g' "$out/check-vulkan.out"

# Errors: one line and an exit code each.
run err-missing train --input no-such-file.txt
run err-context train --context 5
run err-context-cpu train --context 5 --device cpu
run err-lr train --lr=0
run err-split train --split 80/10/5
run err-eval-every train --eval-every 5
run err-chapter lecture --chapter 99
run err-unseen eval --work-dir $w --word 'zoë'
run err-prefix sample --work-dir $w --prefix 'é'
printf 'not a checkpoint' > bad.safetensors
mkdir -p w-bad && cp bad.safetensors w-bad/model.safetensors
run err-checkpoint sample --work-dir w-bad
run err-resume train --work-dir w-bad --resume
files err-checkpoint w-bad
run err-dot train --input <(printf 'a.b\n')
run err-batch train --batch-size 999999999
echo "recorded into $out"
