"""Google's App Engine SDK as a test oracle.

The SDK lives in its own virtualenv (``make oracle`` builds ``.venv-oracle``) and is never
imported into the test process: each oracle script in this folder runs under that venv's
python, reads one JSON document on stdin and writes one JSON document on stdout.
"""
