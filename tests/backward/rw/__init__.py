"""Writers of legacy (read-only) codecs, for tests only: they produce the checked-in fixtures under
``tests/backward/fixtures/`` that the backward codecs in ``segstore_codecs.backward`` must keep reading."""
