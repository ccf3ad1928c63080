# The README's commands. Every target sets up first (idempotent, quick when done).
.PHONY: setup setup-jazzy demo test test-all clean

setup:
	bash scripts/setup.sh

# the second ROS distribution CI tests: .venv-jazzy with the ROS 2 Jazzy wheels
setup-jazzy: setup
	bash scripts/setup_jazzy.sh

# the main job on the bundled default input (sample camera -> node -> bag + rendered frames)
demo: setup
	bash scripts/demo.sh

# the test suite CI runs (slow tests that fit CI included; the ROS tests on Kilted and Jazzy)
test: setup setup-jazzy
	bash scripts/test.sh

clean:
	rm -rf build install log out
