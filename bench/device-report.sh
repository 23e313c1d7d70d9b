#!/usr/bin/env bash
# One report of what a machine's GPU does with makemore, from a built binary alone (no Rust):
#
#   bench/device-report.sh MAKEMORE [OUT]      (OUT: device-report by default)
#
# Copy the (stripped) binary and this repository's bench/ and data/ to the machine, run this,
# read OUT/report.md. Each step's output and wall time go into the report; a step that fails
# is reported and the next one runs. Without a Vulkan loader on the machine, the loader and
# EGL come from .deb files in $MAKEMORE_LOADER_DEBS (default: .gl/ at the repository root),
# fetched on any Debian machine with
#   apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
# A quick try on a small machine: MAKEMORE_REPORT_DATA=names MAKEMORE_REPORT_MIB=8.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: bench/device-report.sh MAKEMORE [OUT]" >&2; exit 2; }
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${2:-device-report}" && cd "${2:-device-report}" && pwd) || exit 1
report="$out/report.md"
data=${MAKEMORE_REPORT_DATA:-names,10m,100m} mib=${MAKEMORE_REPORT_MIB:-1024}
limit=${MAKEMORE_REPORT_STEP_SECONDS:-300}
export NODEVICE_SELECT=1 XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    debs=${MAKEMORE_LOADER_DEBS:-$root/.gl}
    if compgen -G "$debs/*.deb" >/dev/null; then
        for deb in "$debs"/*.deb; do dpkg -x "$deb" /; done
        ldconfig
    else
        echo "note: no Vulkan loader and no .deb files in $debs (see the header of $0)" >&2
    fi
fi
# A driver mounted into a container but not registered with the loader (NVIDIA's layout).
nvidia=/usr/local/nvidia/share
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia/vulkan/icd.d/nvidia_icd.json" ] &&
    ! compgen -G "/usr/share/vulkan/icd.d/nvidia*" >/dev/null &&
    ! compgen -G "/etc/vulkan/icd.d/nvidia*" >/dev/null; then
    export VK_DRIVER_FILES="$nvidia/vulkan/icd.d/nvidia_icd.json"
    export __EGL_VENDOR_LIBRARY_FILENAMES="$nvidia/glvnd/egl_vendor.d/10_nvidia.json"
fi

# step TITLE COMMAND...: the command's output and wall time as one section of the report.
step() {
    local title=$1 start rc
    shift
    echo "== $title" >&2
    start=$(date +%s%N)
    { echo "## $title"; echo; echo '```'; echo "\$ $*"; } >>"$report"
    (cd "$out" && timeout "$limit" "$@") >>"$report" 2>&1
    rc=$?
    {
        echo '```'
        echo
        echo "exit $rc, $((($(date +%s%N) - start) / 1000000)) ms wall"
        echo
    } >>"$report"
}

echo "# makemore on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC')" >"$report"
echo >>"$report"
step "machine" sh -c "uname -srm; nproc; (nvidia-smi -L || true) 2>/dev/null; $bin --version"
step "adapters" "$bin" adapters
step "check (every kernel against the CPU)" "$bin" check
if "$bin" bench --help | grep -q -- --ceilings; then
    step "the adapter's ceilings" "$bin" bench --ceilings
fi
step "kernel times" "$bin" bench --kernels
step "bench: $data" "$bin" bench --data "$data" --device gpu,cpu
for k in 1 2 3 4; do
    step "train at context $k (GPU)" "$bin" train --context "$k" --work-dir "$out/train-k$k"
done
if command -v python3 >/dev/null; then
    corpus="$out/corpus.txt"
    step "a file of $mib MiB" python3 "$root/bench/make_corpus.py" "$corpus" --mib "$mib" --seed 1
    step "train on the $mib MiB file, streamed (GPU)" "$bin" train --input "$corpus" --steps 10 \
        --work-dir "$out/train-streamed"
    rm -f "$corpus"
    if python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
        step "PyTorch on CUDA" python3 "$root/bench/reference.py" --input "$root/data/names.txt" \
            --cuda --skip-loops
    else
        echo "No python3 with torch and a CUDA GPU: PyTorch's step not timed." >>"$report"
    fi
else
    echo "No python3: the large file and PyTorch's step are left out." >>"$report"
fi
echo "report: $report" >&2
