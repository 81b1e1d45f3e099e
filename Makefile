# The two commands of the README; both set the workspace up first when needed.
.PHONY: test run setup

test:
	bash scripts/test.sh

run:
	bash scripts/run.sh

setup:
	bash scripts/setup.sh
