# The README's two commands. Both set up what they need (scripts/setup.sh, idempotent).
.PHONY: demo test test-all setup

demo:
	bash scripts/run_demo.sh

test:
	bash scripts/run_tests.sh

# Including the slow tests (training, full renders).
test-all:
	bash scripts/run_tests.sh -m "slow or not slow"

setup:
	bash scripts/setup.sh
