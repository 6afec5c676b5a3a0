# Production-like image: the same package runs the HTTP service or the projector.

# Build stage: the package in a virtual environment, with its fold compiled by mypyc (the
# wheel's build hook, pyproject.toml; faster projection). mypyc needs a C compiler, which
# the final image does without. The build fails if the compiled fold does not load.
FROM python:3.11-slim AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/subledger \
 && HATCH_BUILD_HOOK_ENABLE_MYPYC=1 /opt/subledger/bin/pip install --no-cache-dir . \
 && /opt/subledger/bin/python -c "import projections.fold.dispatch as d; assert not d.__file__.endswith('.py'), 'pure fold'"

# Final stage: the same base image (the venv's interpreter link points into it).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/subledger/bin:$PATH
COPY --from=build /opt/subledger /opt/subledger
RUN useradd --system --create-home --uid 10001 subledger
USER subledger
# A writable home: without SUBLEDGER_DATABASE_URL the store is ./var/subledger.db (SQLite).
WORKDIR /home/subledger
EXPOSE 8000
ENV SUBLEDGER_HOST=0.0.0.0 SUBLEDGER_PORT=8000
CMD ["subledger", "serve"]
