# The README's two commands. Both set up what they need (scripts/setup.sh, idempotent).
.PHONY: demo test setup

demo:
	bash scripts/run_demo.sh

test:
	bash scripts/run_tests.sh $(PYTEST_ARGS)

setup:
	bash scripts/setup.sh
