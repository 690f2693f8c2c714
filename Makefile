# The README's commands. Each installs what it needs first (scripts/setup.sh).
.PHONY: demo demo-containers images soak gray bench test setup lint fuzz

# The failover demo: the original lab's phases under load, through our proxy and pgbalancer, then
# nginx (as in the original lab), nginx with the resolver workaround, and HAProxy. Results in
# bench/results/. Pass lab flags with DEMO_ARGS, e.g. make demo DEMO_ARGS="--proxies ours,nginx --phase 5s".
DEMO_ARGS ?=
demo:
	@scripts/setup.sh --demo
	cargo build --release --locked -p proxy -p pgbalancer -p backend -p bench
	target/release/lab $(DEMO_ARGS)

# The same demo through the images users deploy: every image of k8s/images built into the local
# Docker engine, the stack run in containers with the pod templates of k8s/manifests. Results in
# bench/results/containers.{md,json} and containers-<proxy>.png. Flags with DEMO_ARGS.
demo-containers: images
	cargo build --release --locked -p bench
	target/release/lab containers $(DEMO_ARGS)

# Every image of k8s/images into the local Docker engine (no registry, no push).
images: setup
	k8s/images/build_and_push.sh --no-push

# The chaos soak: 10 minutes of load through our stack while pods, replicas, pgbalancer and the
# proxy's config change under it (bench/README.md). Results in bench/results/soak.md.
SOAK_ARGS ?=
soak:
	@scripts/setup.sh --demo
	cargo build --release --locked -p proxy -p pgbalancer -p backend -p bench
	target/release/lab soak $(SOAK_ARGS)

# Gray failures through each proxy: one of two pods frozen (SIGSTOP) for 15 s, one of three pods
# 300 ms slow (bench/README.md). Results in bench/results/gray.md. Flags with GRAY_ARGS.
GRAY_ARGS ?=
gray:
	@scripts/setup.sh --demo
	cargo build --release --locked -p proxy -p pgbalancer -p backend -p bench
	target/release/lab gray $(GRAY_ARGS)

# The head-to-head benchmarks (bench/README.md): our proxy vs nginx vs HAProxy over HTTP, pgbalancer
# vs HAProxy vs Postgres direct, idle memory per connection, instructions per request under
# callgrind. Release builds; about 40 minutes with the defaults. Results in
# bench/results/{http,pg,idle,instr}.{md,json} (and .png). Pass flags with BENCH_ARGS,
# e.g. make bench BENCH_ARGS="--rounds 5 --threads 2".
BENCH_ARGS ?=
bench: setup
	cargo build --release --locked -p proxy -p pgbalancer -p bench
	target/release/bench all $(BENCH_ARGS)

# Formatting and clippy first (cheap to fail), then every test, then the k8s checks.
test: images lint
	cargo build --workspace --bins --locked
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
