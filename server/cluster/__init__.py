"""The wire between the studio's processes in cluster mode (`serve --broker`, `worker`).

Web processes and GPU workers share one Redis: Celery carries the jobs (JSON only), the job ledger
(`ledger.py`) is the one record of each job's state that every process agrees on, workers announce
themselves with a heartbeat (`heartbeat.py`), and Flask-SocketIO's message queue carries the
socket messages from workers to whichever web process holds the tab.
"""
