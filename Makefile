# zdps build, run and test targets. `make test` is what CI runs.
GO      ?= go
DATADIR ?= zdps-data
BIN     ?= bin/zdps
PKGS    := ./...
# KMS backends (README, CA keys in an HSM, a KMS or a TPM): PKCS#11 needs cgo,
# so it is built, and its SoftHSM2 tests run, when a C compiler is there; a
# plain `go build ./cmd/zdps` stays pure Go. TAGS= overrides (e.g. TAGS=).
CC      ?= cc
TAGS    ?= $(shell command -v $(CC) >/dev/null 2>&1 && echo pkcs11)
# The cloud KMSes are pure Go but not in the default binary (their SDKs'
# size): make build TAGS='pkcs11 azurekms' adds one. lint vets them all so
# they always compile.
CLOUDKMS_TAGS := azurekms awskms cloudkms

.PHONY: build run test test-setup lint fuzz bench perf perf-postgres clean

build:
	$(GO) build -tags '$(TAGS)' -o $(BIN) ./cmd/zdps

# Runs zdps with the embedded store and a self-initialised CA; needs only Go.
run:
	$(GO) run ./cmd/zdps serve --data-dir $(DATADIR)

# Installs what the tests need (npm packages, services), then runs every test
# with the race detector, plus formatting and vet checks.
test: test-setup lint
	$(GO) test -race -count=1 -timeout 20m -tags '$(TAGS)' $(PKGS)

test-setup:
	bash scripts/test-setup.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags '$(TAGS)' ./internal/cakms/... ./internal/zdpstest/... ./cmd/zdps ./test/kms
	$(GO) vet -tags '$(strip $(TAGS) $(CLOUDKMS_TAGS))' ./internal/cakms/... ./cmd/zdps

# Runs every fuzz target for FUZZTIME each (corpus in each package's testdata/fuzz).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -tags '$(TAGS)' $(PKGS)

# The performance baseline (README, Performance): zdps bench against a local
# zdps serve, then the benchmarks of every pipeline step and the bare
# primitives, in one run. DEVICES, CONCURRENCY, RUNS tune it.
perf:
	bash scripts/perf.sh

# PostgreSQL against bbolt (README, Scale-out on PostgreSQL): bbolt, one
# replica and two replicas on one database, alternating, with round trips,
# retries and PostgreSQL CPU per registration, and the ratios. Needs the
# PostgreSQL of `make test-setup` (PGURL); DEVICES, CONCURRENCY, RUNS tune it.
perf-postgres:
	bash scripts/perf-postgres.sh

clean:
	rm -rf bin
