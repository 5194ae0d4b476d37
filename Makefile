# The two commands of the README, on a fresh Debian machine with Go:
#
#   make demo    install what the demo needs (InspIRCd), then run it
#   make test    install what the tests need, then run the suite
#   make bench-peer  meshbot, raw IRC and NATS side by side (bench/nats)
#
# Packages are installed with apt only when missing (with sudo when not
# root). .ci/run calls `make deps` and `make test` too, so CI runs exactly
# what a person runs.

SHELL := /bin/bash

# What each entry point needs from Debian: the demo's IRC server; the
# tests' servers (InspIRCd by default, ngIRCd for the fallbacks),
# atheme-services (the accounts and SASL of InspIRCd) and ii, the terminal
# IRC client of the watch test.
DEMO_PACKAGES := inspircd
TEST_PACKAGES := inspircd ngircd atheme-services ii

# Extra flags for the demo, e.g. make demo ARGS="--duration 30s".
ARGS ?=

.PHONY: demo test deps deps-demo check bench-peer

demo: deps-demo
	go run ./cmd/meshbot demo $(ARGS)

# -timeout is a guard, not a budget: every package finishes in a few
# minutes on 2 cores; one that hangs fails with its goroutines' stacks
# before the default 10 minutes.
test: deps
	go test -race -count=1 -timeout 9m ./...

# meshbot bench's workloads on meshbot, raw IRC and an embedded NATS, in
# one table (a module of its own: bench/nats). ARGS as for demo, e.g.
# make bench-peer ARGS="-msgs 20000"; MESH_IRCD picks the IRC server.
bench-peer: deps-demo
	cd bench/nats && go run . $(ARGS)

deps:
	@$(MAKE) --no-print-directory install PACKAGES="$(TEST_PACKAGES)"

deps-demo:
	@$(MAKE) --no-print-directory install PACKAGES="$(DEMO_PACKAGES)"

# install PACKAGES="a b": apt-get install those not installed yet.
.PHONY: install
install:
	@need=(); \
	for pkg in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$$pkg"); \
	done; \
	if [ "$${#need[@]}" -gt 0 ]; then \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing with apt-get: $${need[*]}"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$${need[@]}" >/dev/null; \
	fi

# check: everything CI runs (.ci/run), without the install step's CI-only
# output.
check:
	bash .ci/run
