"""Gateway benchmark: ``python -m bench`` measures the gateway against a direct upstream.

One run starts a fixed-response upstream (nginx), the gateway in front of it, and a load
generator (wrk), then prints a report and writes ``bench/results/latest.json``. See
``bench/README.md``.
"""
