"""Fault simulations that prove themselves: inject a fault, watch the metric, the alert and the notifications.

`python -m simulations --help` lists them; `simulations/locustfile.py` holds the Locust users for the web UI.
"""
