"""Run the lab as plain local processes (native mode): `python -m labctl up|status|down|demo`.

`labctl.stack.NativeStack` is the same stack as a context manager, on free ports in a temporary directory,
for the end-to-end tests and the simulations.
"""
