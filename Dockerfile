# The application image, in stages (docker-compose.yml builds the two targets):
#
#   build   the locked Python dependencies (requirements-image.lock: hash-checked, the same pins as
#           requirements.lock without the test tools) and the project, in a virtual environment /opt/venv
#   base    Python + /opt/venv + libmagic (identification) + poppler-utils (pdftotext for the search index's
#           PDF text, pdftoppm for the receipt checks' page render) + AR PL UMing (the TrueType CJK font the
#           四性检测 report PDFs embed) + openssl (operators: SM2 signature checks, `openssl rand`), running as
#           the unprivileged user `archive` (uid 10001) with ARCHIVE_HOME=/data; /data/sealing (mode 0700)
#           is where the sealing keys live, a volume of its own in docker-compose.yml
#   worker  base + the migration tools of the format policy: Ghostscript, qpdf, LibreOffice, ffmpeg,
#           ImageMagick and Noto CJK fonts (Chinese text in PDF/A) -> `archive worker`, `archive beat`
#   portal  base alone, no migration tools -> `archive serve`, `archive init`, `archive config check`
#   clamav  Debian's ClamAV (the release the tests scan with), no Python: clamd, freshclam and clamdscan (the
#           healthcheck), as the user clamav -> the `clamd` and `freshclam` services
#
#   docker build --target portal -t pearl-archive-portal .
#   docker build --target worker -t pearl-archive-worker .
#   docker build --target clamav -t pearl-archive-clamav .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements-image.lock /tmp/requirements-image.lock
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements-image.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archive ./archive
COPY ingest ./ingest
COPY preservation ./preservation
COPY search ./search
COPY access_portal ./access_portal
# the project itself, without dependencies (all above); pip fetches its build backend (setuptools) for
# the build only
RUN /opt/venv/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ARCHIVE_HOME=/data
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 poppler-utils fonts-arphic-uming openssl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 archive \
    && useradd --system --create-home --home-dir /home/archive --uid 10001 --gid 10001 archive \
    && install -d -o archive -g archive -m 0755 /data \
    && install -d -o archive -g archive -m 0700 /data/sealing
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/archive
VOLUME ["/data"]
ENTRYPOINT ["archive"]

FROM base AS worker
# root only for apt-get; every stage that runs ends as `archive`, by number so that orchestrators can verify
# it is not root (runAsNonRoot)
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ghostscript qpdf imagemagick ffmpeg fonts-noto-cjk \
        libreoffice-core libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
CMD ["worker"]

# Debian's ClamAV for the receipt virus scan; a named volume mounted on /run/clamav or /var/lib/clamav starts
# with these directories' owner, so clamd and freshclam (not root) can write there
FROM debian:bookworm-slim AS clamav
RUN apt-get update \
    && apt-get install -y --no-install-recommends clamav-daemon clamav-freshclam clamdscan ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o clamav -g clamav -m 0755 /run/clamav /var/lib/clamav
USER clamav
CMD ["clamd", "--foreground"]

# last, so that a plain `docker build .` gives the small portal image
FROM base AS portal
USER 10001:10001
EXPOSE 8000
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
