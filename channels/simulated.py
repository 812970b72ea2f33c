"""An in-memory channel for ``simulate`` and tests: records every send, contacts nobody.

Provider ids are derived from the message id, so the same run yields the same ids.
A failure script makes chosen sends raise, to exercise retries and ambiguity::

    channel = SimulatedChannel()
    channel.fail("m_1", TransientChannelError("429"), times=2)   # fails twice, then sends
    channel.fail("m_2", AmbiguousSendError("timeout"))            # fails every time
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import ClassVar

from channels.base import AdapterSettings, DeliveryStatus, OutboundMessage, SendResult
from channels.segments import segments
from orchestrator.clock import Clock
from orchestrator.errors import ChannelError

_PREFIX = {"sms": "SM", "voice": "CA", "email": "EM", "letter": "LT"}


def provider_id_for(prefix: str, message_id: str) -> str:
    """``prefix`` + 32 hex characters derived from the message id (Twilio SID shape)."""
    return prefix + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]


class SimulatedSettings(AdapterSettings):
    pass


class SimulatedChannel:
    name: ClassVar[str] = "simulated"
    settings_model: ClassVar[type[AdapterSettings]] = SimulatedSettings

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.results: list[SendResult] = []
        self.attempts: list[str] = []  # message ids of every call to send, failed or not
        self._failures: dict[str, list[ChannelError]] = {}
        self._forever: dict[str, ChannelError] = {}
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def from_config(
        cls, channel: str, settings: AdapterSettings, *, base_dir: Path, clock: Clock
    ) -> SimulatedChannel:
        return cls()

    def fail(self, message_id: str, error: ChannelError, *, times: int | None = None) -> None:
        """Make sends of ``message_id`` raise ``error``: ``times`` times, or always."""
        with self._lock:
            if times is None:
                self._forever[message_id] = error
            else:
                self._failures.setdefault(message_id, []).extend([error] * times)

    def send(self, message: OutboundMessage) -> SendResult:
        with self._lock:
            self.attempts.append(message.message_id)
            if message.message_id in self._forever:
                raise self._forever[message.message_id]
            queue = self._failures.get(message.message_id)
            if queue:
                raise queue.pop(0)
            count = segments(message.text).segments if message.channel == "sms" else None
            result = SendResult(
                provider_id=provider_id_for(_PREFIX.get(message.channel, "SI"), message.message_id),
                status=DeliveryStatus.sent,
                segments=count,
            )
            self.sent.append(message)
            self.results.append(result)
            return result

    def by_channel(self, channel: str) -> list[OutboundMessage]:
        return [m for m in self.sent if m.channel == channel]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
            self.results.clear()
            self.attempts.clear()

    def close(self) -> None:
        self.closed = True
