# mlmd-bundle 0.1.0 (cpu): Quantum ESPRESSO 6.7, NequIP/Allegro, LAMMPS, Debian bookworm
#
# Rendered by `bundle images render --flavor cpu --format docker` from
# containers/recipes/cpu.yaml.j2 and containers/stack.lock.yaml: edit those, not this file.
# Build context (`bundle images build` assembles it):
#   wheelhouse/: wheels of requirements.lock.txt for Python 3.11, and that file
#   mlmd-bundle/: git archive of the source revision, with its wheel in dist/

# ---- stage python ----
FROM mlmd-bundle-base:debian-bookworm-minbase-af67ad689d7c AS python
# Debian's Python 3.11 with venv
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.11 python3.11-venv; \
    rm -rf /var/lib/apt/lists/*; \
    python3.11 -c 'import ensurepip, venv'
# the wheelhouse (build context)
COPY wheelhouse /wheelhouse
# the Python lock, offline; fails on any missing or conflicting wheel
RUN set -eu; \
    python3.11 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-index --no-cache-dir --find-links /wheelhouse -r /wheelhouse/requirements.lock.txt; \
    /opt/venv/bin/pip check

# ---- stage runtime ----
FROM mlmd-bundle-base:debian-bookworm-minbase-af67ad689d7c AS runtime
ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/venv/bin" \
    MLMD_BUNDLE_ROOT="/opt/mlmd-bundle" \
    ESPRESSO_PSEUDO="/usr/share/espresso/pseudo" \
    OMP_NUM_THREADS="1" \
    OMPI_ALLOW_RUN_AS_ROOT="1" \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1" \
    OMPI_MCA_btl_vader_single_copy_mechanism="none" \
    LANG="C.UTF-8"
WORKDIR /work
CMD ["bundle", "--help"]
LABEL org.opencontainers.image.title="mlmd-bundle" \
      org.opencontainers.image.version="0.1.0" \
      org.mlmd-bundle.flavor="cpu"
# engines from Debian at their pinned versions, and the venv's interpreter
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends quantum-espresso=6.7-2+b1 quantum-espresso-data=6.7-2 openmpi-bin=4.1.4-3+b1 libopenblas0-serial=0.3.21+ds-4 python3.11 ca-certificates; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \
    test "$(dpkg-query -W -f='${Version}' quantum-espresso)" = "6.7-2+b1"; \
    test "$(dpkg-query -W -f='${Version}' quantum-espresso-data)" = "6.7-2"; \
    test "$(dpkg-query -W -f='${Version}' openmpi-bin)" = "4.1.4-3+b1"; \
    test "$(dpkg-query -W -f='${Version}' libopenblas0-serial)" = "0.3.21+ds-4"
# the Python environment
COPY --from=python /opt/venv /opt/venv
# the bundle's source revision
COPY mlmd-bundle /opt/mlmd-bundle
# install the bundle; every engine must run (a RUN without network 'succeeds' silently otherwise); versions manifest
RUN set -eu; \
    /opt/venv/bin/pip install --no-index --no-deps --no-cache-dir /opt/mlmd-bundle/dist/*.whl; \
    rm -rf /opt/mlmd-bundle/dist; \
    test "$(command -v python3)" = /opt/venv/bin/python3; \
    test "$(command -v mpirun)" = /usr/bin/mpirun; \
    pw.x < /dev/null > /tmp/pw.out 2>&1 || true; \
    grep -q 'Program PWSCF v.6.7' /tmp/pw.out; \
    rm -f /tmp/pw.out; \
    ls $ESPRESSO_PSEUDO/Li.* $ESPRESSO_PSEUDO/O.* > /dev/null; \
    python -c 'import nequip, allegro, lammps'; \
    lmp -h | grep -q 'Large-scale Atomic/Molecular Massively Parallel Simulator'; \
    bundle --version; \
    bundle images manifest --flavor cpu --out /opt/mlmd-bundle/versions.json

# Labels of each build, appended by `bundle images build` as one last LABEL step
# (by hand: docker build --label org.opencontainers.image.revision=<SOURCE_REVISION> --label org.mlmd-bundle.lock-sha256=<LOCK_SHA256> ...)
