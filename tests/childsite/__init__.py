"""Code the tests put in their child processes (``sitecustomize``)."""
