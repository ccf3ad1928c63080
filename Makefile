# The README's commands. Every target sets up first (idempotent, quick when done).
.PHONY: setup demo test test-all clean

setup:
	bash scripts/setup.sh

# the main job on the bundled default input (sample camera -> node -> bag + rendered frames)
demo: setup
	bash scripts/demo.sh

# the test suite CI runs (slow tests that fit CI included)
test: setup
	bash scripts/test.sh

clean:
	rm -rf build install log out
