#!/usr/bin/env bash
# NVDEC measured, in one run of about 5 minutes on a CUDA machine (from the repository root):
#
#     python benchmarks/clips.py CLIPS_DIR           # beforehand, on any machine: Kinetics-like clips to carry over
#     bash benchmarks/nvdec_check.sh CLIPS_DIR       # on the GPU machine; WHEELS=DIR installs from wheels there
#
# 1. Stops at once, saying why, when the driver's NVDEC library (libnvcuvid.so.1) is missing: torchcodec would
#    silently decode on the CPU instead.
# 2. Installs torchcodec and PyAV (versions from constraints.txt) into a venv that keeps the machine's own torch,
#    and makes torchcodec load the FFmpeg libraries PyAV's wheel ships: their plain names, as symlinks inside a
#    copy of PyAV's `av.libs` folder, on LD_LIBRARY_PATH (a symlink elsewhere would not find their own
#    dependencies, which they look up beside themselves). torchcodec's NVDEC decoder drives libnvcuvid directly
#    and uses FFmpeg only to read the files, so these FFmpeg builds need no CUDA support.
# 3. benchmarks/nvdec_check.py: cpu_fallback (must be false), NVDEC vs PyAV frames, decode-only frames/s and clips/s.
# 4. benchmarks/train_throughput.py: the gpu-decode training rows at 2 and 8 workers beside the CPU-decode ones.
set -u
clips=${1:?usage: bash benchmarks/nvdec_check.sh CLIPS_DIR (written by python benchmarks/clips.py CLIPS_DIR)}
python=${PYTHON:-python3}
work=${NVDEC_WORK:-/tmp/nvdec_check}

if ! ldconfig -p 2>/dev/null | grep -q 'libnvcuvid\.so\.1'; then
    echo "no NVDEC library: the driver's libnvcuvid.so.1 is not on this machine's library path, so GPU decoding" \
        "cannot run (torchcodec would decode on the CPU). Install the NVIDIA driver's video decode library; in a" \
        "container, start it with NVIDIA_DRIVER_CAPABILITIES including video (for example compute,utility,video)." >&2
    exit 2
fi
ldconfig -p | grep 'libnvcuvid\.so\.1'

mkdir -p "$work"
"$python" -m venv --system-site-packages "$work/venv" || exit 1
pins=$(grep -E '^(torchcodec|av)==' constraints.txt)
# shellcheck disable=SC2086  # the pins are two words on purpose
"$work/venv/bin/pip" install -q --no-deps ${WHEELS:+--no-index --find-links "$WHEELS"} $pins || exit 1
py="$work/venv/bin/python"

avlibs=$("$py" -c "import av, pathlib; print(pathlib.Path(av.__file__).resolve().parent.parent / 'av.libs')")
rm -rf "$work/av.libs" && cp -r "$avlibs" "$work/av.libs" || exit 1
for lib in "$work"/av.libs/lib{avcodec,avformat,avutil,avdevice,avfilter,swscale,swresample}-*.so.*; do
    base=$(basename "$lib")
    rest=${base#*.so.}
    ln -sf "$base" "$work/av.libs/${base%%-*}.so.${rest%%.*}" # libavcodec-1a2b.so.62.28.102 -> libavcodec.so.62
done
export LD_LIBRARY_PATH="$work/av.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
"$py" -c "import torch, torchcodec; print('torch', torch.__version__, 'torchcodec', torchcodec.__version__, \
'FFmpeg', torchcodec.ffmpeg_major_version)" || exit 1

timeout 150 "$py" benchmarks/nvdec_check.py "$clips" || exit 1
timeout 270 "$py" benchmarks/train_throughput.py --workers 2 8 --loaders fast gpu-decode --batches
