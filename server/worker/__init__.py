"""The job runner: what the studio's worker thread runs (queueing, model loading, one job's steps and outputs).

It calls the engine (server.engine) and storage (server.storage) and knows nothing of Flask or sockets; it reports
through the payloads in server.payloads.
"""
