"""The relay: a small stateless HTTP service that holds the S3 credentials.

It never sees the bytes of an upload, only control calls (complete, status, abort, refresh,
online mint). ``config`` holds its settings and API-token policy, ``service`` the logic (no
Flask), ``app`` the HTTP layer, ``server`` the WSGI server, ``client`` the user side.
"""
