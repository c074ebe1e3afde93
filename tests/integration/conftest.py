"""Fixtures for every integration test.

`dovecot`: a started private Dovecot IMAP server with alice@, bob@ and support@example.com (password
`secret`), stopped after the test; see tests/integration/dovecot.py.
"""

from tests.integration.dovecot import dovecot

__all__ = ["dovecot"]
