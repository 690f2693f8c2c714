# The README's commands. Each installs what it needs first (scripts/setup.sh).
.PHONY: test setup lint fuzz

test: setup
	cargo test --workspace --locked
	k8s/check.sh

setup:
	@scripts/setup.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Every fuzz target for FUZZ_SECONDS (default 60) each; not part of `test` (too slow).
fuzz:
	@scripts/fuzz.sh
