#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md and the README's notebooks table, in one run on a CUDA machine with the
# package's dependencies installed. Each step has a time limit; its whole output is kept as OUT_DIR/STEP.txt.
#
#     bash benchmarks/gpu_figures.sh [OUT_DIR]              # from the repository root
#     COMPILE=1 bash benchmarks/gpu_figures.sh [OUT_DIR]    # also the fast path under torch.compile
#     NVDEC=CLIPS_DIR bash benchmarks/gpu_figures.sh [OUT_DIR]   # also benchmarks/nvdec_check.sh on those clips
set -u
out=${1:-gpu_figures}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() { # step NAME SECONDS COMMAND...: run it within SECONDS, keep its output, carry on whatever its exit
    local name=$1 seconds=$2 start=$SECONDS
    shift 2
    echo "== $name (limit $seconds s)"
    timeout "$seconds" "$@" >"$out/$name.txt" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s"
    tail -n 20 "$out/$name.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
nproc | tee -a "$out/gpu.txt"
step gpu_checks 80 "$python" benchmarks/gpu_checks.py
step train_throughput 240 "$python" benchmarks/train_throughput.py --workers 2 8 # and batches 32, 64
# The lessons at full GPU size on the self-made default set, given as KINETICS_DATA_PATH: 03 trains the Kinetics
# run (ResNet-50, 8 x 224^2, 10 epochs), 04 evaluates it. 05 fetches pretrained weights, which needs the internet.
step synthetic_data 45 "$python" -m video_processing.synthetic --out data/synthetic --workers "$(nproc)"
step notebooks 250 env KINETICS_DATA_PATH="$PWD/data/synthetic" "$python" -m pytest -q --durations=0 \
    --nbmake --nbmake-timeout=240 notebooks/01_clip_sampling.ipynb notebooks/02_transforms.ipynb \
    notebooks/03_training.ipynb notebooks/04_validation_metrics.ipynb
if [ "${COMPILE:-0}" = 1 ]; then # the fast path under torch.compile (minutes of compiling)
    step train_throughput_compile 150 "$python" benchmarks/train_throughput.py --compile --workers
fi
if [ -n "${NVDEC:-}" ]; then # GPU decoding: its own venv and FFmpeg set-up (benchmarks/nvdec_check.sh)
    step nvdec_check 470 bash benchmarks/nvdec_check.sh "$NVDEC"
fi
