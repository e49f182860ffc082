"""Files on disk: uploads, outputs and their metadata, the gallery, model files and hashes.

Every write goes through safe_files' helpers, so nothing lands outside the outputs folder.
"""
