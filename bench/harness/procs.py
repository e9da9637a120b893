"""Processes the benchmark starts, and what /proc says about them.

Every process is started in its own process group with stdout/stderr in a log file in the
work dir, optionally pinned to CPUs with taskset, and stopped (SIGTERM, then SIGKILL) by the
`Fleet` that started it. CPU time comes from /proc/<pid>/stat (utime + stime, in clock
ticks), memory from /proc/<pid>/status (VmRSS, VmHWM); a "process" may be a tree (nginx: a
master and its workers), so figures are summed over the tree.
"""

import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (free for a moment, as in the testkit)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout, what):
    """Waits until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what}: nothing listens on 127.0.0.1:{port} after {timeout}s")


def children(pid):
    """Direct children of pid (from /proc/<pid>/task/*/children)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree(pid):
    """pid and all its descendants."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen


def cpu_seconds(pid):
    """utime + stime of pid's tree, in seconds (resolution 1/CLK_TCK)."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                # Field 2 (comm) may hold spaces; fields after the closing paren are fixed.
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


_STATUS_KEYS = {"VmRSS": "rss", "VmHWM": "hwm", "RssAnon": "anon", "RssFile": "file"}


def memory_kib(pid):
    """{"rss": VmRSS, "hwm": VmHWM, "anon": RssAnon, "file": RssFile} in KiB, summed over
    pid's tree. RssFile is mostly the binary's code pages: clean, shared between processes
    running the same binary, and reclaimable; RssAnon is what the process allocated."""
    out = dict.fromkeys(_STATUS_KEYS.values(), 0)
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in _STATUS_KEYS:
                        out[_STATUS_KEYS[key]] += int(value.split()[0])
        except (OSError, ValueError):
            pass
    return out


def reset_peak(pid):
    """Resets VmHWM to the current RSS for pid's tree (write 5 to clear_refs), so the next
    reading is the peak of what ran in between. False if the kernel refused."""
    ok = True
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


class Proc:
    """One started process (or process tree) with a name and a log file."""

    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def check(self):
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}; log {self.log_path}:\n"
                + self.log_tail()
            )


class Fleet:
    """Starts processes and stops all of them (in reverse order) on close."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.procs = []

    def spawn(self, name, argv, cpus=None, env=None, cwd=None):
        log_path = os.path.join(self.work_dir, f"{name}.log")
        if cpus:
            argv = ["taskset", "-c", cpus] + list(argv)
        full_env = dict(os.environ)
        full_env.update(env or {})
        log = open(log_path, "wb")
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        log.close()
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        """Stops one process (SIGTERM, then SIGKILL after 5 s) and forgets it."""
        if proc.alive():
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait()
        self.procs.remove(proc)

    def close(self):
        for proc in reversed(self.procs):
            if proc.alive():
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait()
        self.procs.clear()
