"""sipguard's test kit: what tests/, the Molecule verifiers and bench/ share.

- testkit.ansible: run ansible-playbook / ansible / ansible-doc (one function, `ansible`).
- testkit.systemd: wait until systemd in a container has booted (one function, `wait_for_systemd`).
- testkit.topology: the lab/Molecule address plan, read from testkit/topology.json.
- testkit.vantage: the SIP vantage probe (testkit/vantage_probe.py run inside a testinfra host).

Importable as `testkit` from pytest runs (pyproject.toml's pytest `pythonpath`) and from
`.venv/bin/python bench/x.py` (the sipguard-repo.pth that scripts/bootstrap-venv.sh puts in the venv).
Stdlib only, but for testinfra, which testkit.vantage and Topology.host import when called.
"""
