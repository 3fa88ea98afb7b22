"""Which replica serves a request: session affinity, least outstanding requests for new sessions, health state.

Pure bookkeeping, no I/O, so every routing rule is tested without a server; `replicas.OpenAIReplicas` does the HTTP.

*A session* is one conversation. Its key is, unless the caller names one with `session_scope`, a hash of the
conversation's stable prefix: the system message(s) and the first user message. Those are the same at every step
of an agent run (the loop only appends), so every step of one conversation lands on the replica that already holds
its prefix in the KV cache (vLLM's automatic prefix caching, llama.cpp's slot cache). When context fitting drops the
first user turn the key changes, but so does the prompt prefix: nothing cached is lost by moving then.

Rules, in order:
1. A session that has a replica keeps it while that replica is healthy.
2. A new session (or one whose replica is down) goes to the healthy replica with the fewest requests in flight;
   ties go to the replica holding the fewest sessions, then round-robin. The session then sticks to it — its cache
   lives there now — even after its old replica comes back.
3. A replica is marked down by a failed request and skipped until ``cooldown`` seconds pass; then it is *due*: the
   caller probes it (`due_for_probe`) and marks it up, and new sessions flow to it again (it has the fewest).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from qwen_agent.messages import Message

__all__ = ["ReplicaState", "Router", "session_key", "session_scope"]

_EXPLICIT_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("qwen_agent_session_key", default=None)


@contextlib.contextmanager
def session_scope(key: str) -> Iterator[None]:
    """Route every model request made inside this block (this task and the tasks it starts) as session ``key``:
    for callers that know their conversation id (a chat server's session token) better than a prefix hash does."""
    token = _EXPLICIT_KEY.set(key)
    try:
        yield
    finally:
        _EXPLICIT_KEY.reset(token)


def _text(message: Message) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    return "\x1f".join(part.model_dump_json() for part in content)


def session_key(messages: Sequence[Message]) -> str:
    """The session a request belongs to: `session_scope`'s key, else a hash of the system message(s) and the
    first user message (the prefix every step of one conversation shares)."""
    explicit = _EXPLICIT_KEY.get()
    if explicit is not None:
        return "k:" + explicit
    digest = hashlib.sha256()
    for message in messages:
        digest.update(message.role.encode())
        digest.update(b"\x1e")
        digest.update(_text(message).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1d")
        if message.role == "user":
            break
    return "h:" + digest.hexdigest()[:32]


@dataclass
class ReplicaState:
    """What the router knows about one replica."""

    url: str
    outstanding: int = 0
    healthy: bool = True
    #: monotonic time after which a replica that is down is probed again.
    retry_at: float = 0.0
    failures: int = 0
    served: int = 0
    sessions: int = 0


class Router:
    """Thread-safe routing table over ``urls`` (one replica each). ``max_sessions`` bounds the affinity table
    (least recently used sessions are forgotten first); ``cooldown`` is how long a failed replica rests."""

    def __init__(self, urls: Sequence[str], *, max_sessions: int = 100_000, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("a router needs at least one replica")
        self.replicas = [ReplicaState(url) for url in urls]
        self.max_sessions = max_sessions
        self.cooldown = cooldown
        self._clock = clock
        self._affinity: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def pick(self, key: str, exclude: frozenset[int] = frozenset()) -> int | None:
        """The replica for session ``key`` (see the module's rules), counted as one more request in flight; None
        when every replica not in ``exclude`` is down. Pair each pick with `release`."""
        with self._lock:
            current = self._affinity.get(key)
            if current is not None and current not in exclude and self.replicas[current].healthy:
                self._affinity.move_to_end(key)
                chosen = current
            else:
                candidates = [i for i, r in enumerate(self.replicas) if r.healthy and i not in exclude]
                if not candidates:
                    return None
                turn = next(self._turn)
                n = len(self.replicas)
                chosen = min(candidates, key=lambda i: (self.replicas[i].outstanding, self.replicas[i].sessions,
                                                        (i - turn) % n))
                self._assign(key, current, chosen)
            self.replicas[chosen].outstanding += 1
            return chosen

    def _assign(self, key: str, old: int | None, new: int) -> None:
        if old is not None:
            self.replicas[old].sessions -= 1
        self._affinity[key] = new
        self._affinity.move_to_end(key)
        self.replicas[new].sessions += 1
        while len(self._affinity) > self.max_sessions:
            _, dropped = self._affinity.popitem(last=False)
            self.replicas[dropped].sessions -= 1

    def release(self, index: int, *, ok: bool) -> None:
        """A request picked on ``index`` ended; ``ok=False`` when the replica failed it (it is marked down)."""
        with self._lock:
            replica = self.replicas[index]
            replica.outstanding -= 1
            if ok:
                replica.served += 1
            else:
                self._down(replica)

    def _down(self, replica: ReplicaState) -> None:
        replica.healthy = False
        replica.failures += 1
        replica.retry_at = self._clock() + self.cooldown

    def mark_down(self, index: int) -> None:
        with self._lock:
            self._down(self.replicas[index])

    def mark_up(self, index: int) -> None:
        """A probe reached the replica: route new sessions to it again."""
        with self._lock:
            self.replicas[index].healthy = True

    def due_for_probe(self) -> list[int]:
        """Replicas that are down and have rested ``cooldown`` seconds; each is pushed another cooldown ahead so
        concurrent requests do not all probe it."""
        now = self._clock()
        with self._lock:
            due = [i for i, r in enumerate(self.replicas) if not r.healthy and r.retry_at <= now]
            for i in due:
                self.replicas[i].retry_at = now + self.cooldown
            return due

    def replica_of(self, key: str) -> int | None:
        """The replica session ``key`` sticks to now (None: not seen, or forgotten)."""
        with self._lock:
            return self._affinity.get(key)
