# Production-like image: the same package runs the HTTP service or the projector.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY projections ./projections
RUN pip install --no-cache-dir . && useradd --system --uid 10001 subledger
USER subledger
EXPOSE 8000
ENV SUBLEDGER_HOST=0.0.0.0 SUBLEDGER_PORT=8000
CMD ["subledger", "serve"]
