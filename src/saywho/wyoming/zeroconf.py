"""The ``_wyoming._tcp`` mDNS record by which Home Assistant discovers the server."""

from __future__ import annotations

import logging
import socket

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."


def local_address() -> str:
    """This machine's address on the LAN (for the record of a server bound to 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("224.0.0.251", 5353))  # nothing is sent: this only picks a route
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class Advertisement:
    """Registers ``<name>._wyoming._tcp.local.`` on ``register()``, withdraws it on ``unregister()``.

    A network without multicast (or without the ``zeroconf`` package) only costs a
    warning: Home Assistant can still be pointed at the host and port by hand.
    """

    def __init__(self, port: int, *, host: str = "0.0.0.0", name: str | None = None) -> None:
        self.port = port
        self.host = local_address() if host in ("0.0.0.0", "", "::") else host
        self.name = name or f"saywho-{socket.gethostname().split('.')[0]}"
        self._zeroconf = None
        self._info = None

    async def register(self) -> None:
        try:
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.name}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(socket.gethostbyname(self.host))],
                port=self.port,
            )
            zeroconf = AsyncZeroconf()
            await zeroconf.async_register_service(info)
        except Exception as exc:
            logger.warning("zeroconf advertisement failed (add the server in Home Assistant by host and port): %s",
                           exc)
            return
        self._zeroconf, self._info = zeroconf, info
        logger.info("advertised %s.%s at %s:%d", self.name, SERVICE_TYPE, self.host, self.port)

    async def unregister(self) -> None:
        if self._zeroconf is None:
            return
        try:
            await self._zeroconf.async_unregister_service(self._info)
            await self._zeroconf.async_close()
        except Exception as exc:
            logger.debug("zeroconf withdrawal failed: %s", exc)
        self._zeroconf = self._info = None
