# syntax=docker/dockerfile:1
# hongbao: a static binary with the demo page inside, on a minimal base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/hongbao ./server

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hongbao /hongbao
USER nonroot:nonroot
ENV HONGBAO_ADDR=:8080
EXPOSE 8080
# distroless has no shell or curl: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/hongbao", "healthcheck"]
ENTRYPOINT ["/hongbao"]
