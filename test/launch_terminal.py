"""`ros2 launch` started from a test as a shell starts it: with a terminal on stdin.

With a non-tty stdin, launch is "noninteractive" and forwards SIGINT to the node itself on top of
the process group's; Popen.send_signal() then polls first and can reap a node that already exited
before asyncio's child watcher sees it ("Unknown child process pid", exit code 255; CPython issue
87744, fixed in 3.13's asyncio). Interactive, launch leaves SIGINT to the process group.
"""
from __future__ import annotations

import os
import pty
import subprocess


def start_launch(command: str, env: dict, stdout) -> subprocess.Popen:
    """`bash -c command` in its own process group with a pseudo-terminal on stdin; close it
    with close_terminal() after the process ended."""
    primary, terminal = pty.openpty()
    proc = subprocess.Popen(["bash", "-c", command], env=env, stdin=terminal, stdout=stdout,
                            stderr=subprocess.STDOUT, start_new_session=True)
    os.close(terminal)
    proc.terminal = primary
    return proc


def close_terminal(proc: subprocess.Popen) -> None:
    os.close(proc.terminal)
