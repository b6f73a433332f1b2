# Sourced by the GPU-machine scripts: `source tools/gpu-unpack.sh ARCHIVE` unpacks a tools/pack-gpu.sh archive into
# a fresh directory $work (binaries in $work/afd/bin) and puts its libraries, CUDA's and NCCL's (the pip package
# the GPU host has, when present) on LD_LIBRARY_PATH.
work=$(mktemp -d)
tar -C "$work" -xJf "$1"
nccl=$(python3 -c "import nvidia.nccl,os;print(os.path.join(list(nvidia.nccl.__path__)[0],'lib'))" 2>/dev/null || true)
export LD_LIBRARY_PATH="$work/afd/lib:/usr/local/cuda/lib64${nccl:+:$nccl}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off (see the device notes)
