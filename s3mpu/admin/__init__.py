"""The admin's side: holds credentials.

``mint`` creates an upload and presigns its parts (with ``presign``); ``plan`` builds the
content-bound part layout a user sends in; ``completion`` completes and verifies with
credentials (used by the relay too); ``housekeeping`` lists, aborts and cleans up uploads.
"""
