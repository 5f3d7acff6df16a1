# The front: HAProxy from Debian's package with deploy/haproxy.cfg. On an ordinary machine
#     docker build -f deploy/front.Dockerfile -t yadokari-front .
# `scripts/image` gives RUNTIME a local base that already holds Debian's haproxy binary.
ARG RUNTIME=debian:bookworm-slim
FROM ${RUNTIME}
RUN if [ ! -x /usr/sbin/haproxy ]; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY deploy/haproxy.cfg /etc/haproxy/haproxy.cfg
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
