# The application image: portal (`archive serve`), worker (`archive worker`) and beat (`archive beat`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARCHIVE_HOME=/data

# Identification (libmagic) and the migration tools of the format policy; Noto CJK so that Chinese text
# renders in PDF/A and access copies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libmagic1 ghostscript qpdf poppler-utils \
        libreoffice-core libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui \
        ffmpeg imagemagick fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY archive ./archive
COPY ingest ./ingest
COPY preservation ./preservation
COPY search ./search
COPY access_portal ./access_portal
RUN pip install . \
    && useradd --system --create-home --home-dir /home/archive --uid 10001 archive \
    && mkdir -p /data \
    && chown archive:archive /data

USER archive
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["archive"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
