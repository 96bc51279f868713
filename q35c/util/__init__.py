"""Utilities every layer may use: the user-error type and its rendering (`errors`), atomic file and directory
writes (`output`), and the progress line (`progress`)."""
