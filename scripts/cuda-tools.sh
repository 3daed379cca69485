# Sourced by scripts/test.sh and scripts/gpu-check.sh: the pinned NVRTC and ptxas
# wheels (no CUDA toolkit needed), installed once into $ENTMIN_HOME/cuda-tools, and
# the variables that let entmin find them: LD_LIBRARY_PATH for libnvrtc.so.12 (cudarc
# loads it by name) and ENTMIN_PTXAS.
cuda_tools="${ENTMIN_HOME:-$HOME/.cache/entmin}/cuda-tools"
if [ ! -x "$cuda_tools/nvidia/cuda_nvcc/bin/ptxas" ] || [ ! -e "$cuda_tools/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
    echo "installing NVRTC and ptxas wheels into $cuda_tools"
    python3 -m pip install --quiet --disable-pip-version-check --target "$cuda_tools" \
        nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-nvcc-cu12==12.9.86
fi
export LD_LIBRARY_PATH="$cuda_tools/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ENTMIN_PTXAS="$cuda_tools/nvidia/cuda_nvcc/bin/ptxas"
