"""Reference counting shared by readers: the last ``dec_ref`` releases the resources (``_release``)."""

from __future__ import annotations

import threading

from segstore.errors import AlreadyClosedError

__all__ = ["RefCounted"]


class RefCounted:
    """Starts with one reference (the creator's). ``inc_ref`` after the count reached zero raises."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._refs = 1
        self._lock = threading.Lock()

    def inc_ref(self) -> None:
        with self._lock:
            if self._refs <= 0:
                raise AlreadyClosedError(f"{self._what} is closed")
            self._refs += 1

    def try_inc_ref(self) -> bool:
        with self._lock:
            if self._refs <= 0:
                return False
            self._refs += 1
            return True

    def dec_ref(self) -> None:
        with self._lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            self._release()

    def _release(self) -> None:
        """Free what the object holds; called once, by the last ``dec_ref``."""
