"""The demo's scenarios: which of the five failures are switched on.

A fault is injected into the first generation of a service only: a service the
supervisor restarts (after a drain, or a crash) comes back fresh, as a restart
would clear a leak or a storm on a real platform. The stuck locks and the weak
secret live in Redis and in the .env file, so they last until someone fixes them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

WEAK_SECRET = "your-secret-key"  # the platform's historical default (see the incident report)
STORM_CONNECTIONS = 15  # payment-service's idle connections past its budget of 5
SLOW_OPERATIONS = 3  # order-service's concurrent operations that each take seconds


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    connection_storm: bool = False
    memory_leak: bool = False
    stuck_lock: bool = False
    weak_secret: bool = False
    slow_drain: bool = False

    def service_faults(self, service: str) -> list[str]:
        """Extra arguments for the first generation of `service`."""
        args: list[str] = []
        if service == "payment-service" and self.connection_storm:
            args += ["--storm", str(STORM_CONNECTIONS)]
        if service == "order-service":
            if self.memory_leak:
                args.append("--leak")
            if self.slow_drain:
                args += ["--slow-ops", str(SLOW_OPERATIONS)]
        return args

    def dotenv(self) -> str:
        """The initial secret store."""
        if self.weak_secret:
            access = refresh = WEAK_SECRET
        else:
            access, refresh = secrets.token_urlsafe(64), secrets.token_urlsafe(64)
        return f"JWT_SECRET={access}\nJWT_REFRESH_SECRET={refresh}\n"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "incident",
            "all five failures at once",
            connection_storm=True,
            memory_leak=True,
            stuck_lock=True,
            weak_secret=True,
            slow_drain=True,
        ),
        Scenario("healthy", "no failure"),
        Scenario(
            "connection-storm",
            "payment-service opens idle connections well past its budget",
            connection_storm=True,
        ),
        Scenario(
            "memory-leak",
            "order-service leaks memory and order.created listeners",
            memory_leak=True,
        ),
        Scenario(
            "stuck-lock",
            "an inventory lock without TTL and one held long past stale_after",
            stuck_lock=True,
        ),
        Scenario(
            "weak-secret",
            "JWT_SECRET is 'your-secret-key', and the refresh secret is the same",
            weak_secret=True,
        ),
        Scenario(
            "slow-drain",
            "order-service has in-flight operations that each take seconds",
            slow_drain=True,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ValueError(f"unknown scenario {name!r}; expected one of {known}") from None
