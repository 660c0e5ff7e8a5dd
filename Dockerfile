# The manager image: controllers and webhook server in one binary (--mode chooses).
# Build with `make docker-build IMG=<registry>/customer-operator:<tag>`.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
# What --version prints, as `make image` stamps it (`make docker-build` passes both).
ARG VERSION=dev
ARG COMMIT=unknown

WORKDIR /workspace
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum change,
# not on every source edit.
COPY go.mod go.sum ./
RUN go mod download

# Only what the binary is built from; hack/ and config/ would only invalidate the cache.
COPY *.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhookserver/ webhookserver/

# Static (no cgo), so it runs on distroless/static. GOARCH is left to the platform of
# the build when TARGETARCH is unset (plain `docker build`).
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o manager .

# distroless/static: no shell, no package manager, CA certificates for HTTPS sinks.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
USER 65532:65532

ENTRYPOINT ["/manager"]
