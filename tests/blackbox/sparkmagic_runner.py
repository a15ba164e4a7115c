"""Run a notebook's cells one at a time through nbclient, as told on stdin, for
tests/blackbox/test_livy_clients.py.  Runs with .venv-sparkmagic's Python (its
nbclient, and the kernels registered in the test's private JUPYTER_PATH).

    python sparkmagic_runner.py NOTEBOOK KERNEL
    stdin:  "run N" (execute cell N) ... "quit" (shut the kernel down)
    stdout: one JSON line per step: {"ready": true}, {"cell": N, "outputs": [...]},
            {"done": true}

Driving it a cell at a time lets the test do things between cells (restart
nbhub serve) as a person at the notebook would."""
import json
import sys

import nbformat
from nbclient import NotebookClient


def main():
    nb = nbformat.read(sys.argv[1], as_version=4)
    client = NotebookClient(nb, kernel_name=sys.argv[2], timeout=600, allow_errors=True,
                            startup_timeout=120)
    with client.setup_kernel():
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                break
            i = int(cmd[1])
            client.execute_cell(nb.cells[i], i)
            print(json.dumps({"cell": i, "outputs": nb.cells[i].outputs}), flush=True)
    # setup_kernel's exit shut the kernel down (shutdown_request: sparkmagic
    # deletes its Livy session there)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
