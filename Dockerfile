# lifrnn image for the lab deployment (api, worker and the migration step share it). LIFRNN_HOME
# (/data) holds only scratch folders: uploads, artifacts and checkpoints live in the object store.
# GPU nodes: the default torch wheel from PyPI is a CUDA build; pin TORCH to choose another.
FROM python:3.11-slim

ARG TORCH="torch==2.13.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    LIFRNN_HOME=/data

WORKDIR /app
RUN pip install --no-cache-dir "${TORCH}"
COPY pyproject.toml README.md ./
COPY lifrnn_core ./lifrnn_core
COPY lifrnn ./lifrnn
COPY api ./api
COPY worker ./worker
# migrations, dashboard templates and example specs are package data: the installed wheel has them
RUN pip install --no-cache-dir ".[s3]"

RUN useradd --create-home --uid 1000 lifrnn && mkdir -p /data && chown lifrnn /data
USER lifrnn
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["lifrnn"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
