"""The web process: everything here runs on the eventlet socket loop (Flask routes, Socket.IO events, delivery).

Nothing here runs torch or heavy file work on the loop itself; it hands that to the worker (server.worker) or to
eventlet's thread pool.
"""
