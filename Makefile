# The two README commands: `make demo` (the main job) and `make test` (the whole suite).
.PHONY: demo test bootstrap collector bench

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/python examples/chat_demo.py

test: bootstrap
	bash scripts/test.sh

collector:
	bash collector/build.sh

bench: bootstrap
	.venv/bin/python -m bench
