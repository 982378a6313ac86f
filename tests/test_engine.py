"""The engine: bounded histories and trend maths, hysteresis, and a poller
whose rounds survive collectors that hang, raise or lose their target."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from collectors.config import parse_config
from collectors.core.history import Histories, RingBuffer, linear_trend, percentile, time_to_limit
from collectors.core.model import CheckResult, Reading, Report, Snapshot, Status
from collectors.poller import Poller
from collectors.rules import JUDGES, Rules

# ------------------------------------------------------------------- history


def test_ring_buffer_is_bounded() -> None:
    buf = RingBuffer(capacity=100)
    for i in range(10_000):
        buf.append(float(i), float(i))
    assert len(buf) == 100
    assert buf.first() == (9900.0, 9900.0)
    assert [t for t, _ in buf.window(10)] == [float(t) for t in range(9989, 10_000)]


def test_histories_forget_the_oldest_series_past_their_bound() -> None:
    h = Histories(capacity=5, max_series=3)
    for name in "abcd":
        h.add(name, 0, 1)
    assert len(h) == 3 and h.get("a") is None and h.get("d") is not None


def test_trend_recovers_a_known_slope() -> None:
    pts = [(1000.0 + t, 50.0 + 2.5 * t) for t in range(60)]
    trend = linear_trend(pts)
    assert trend is not None
    assert trend.slope == pytest.approx(2.5)
    assert trend.r2 == pytest.approx(1.0)
    # 50 + 2.5 * 59 = 197.5 now; 300 is 102.5 away at 2.5/s = 41 s.
    assert time_to_limit(trend, 300, now=1059.0) == pytest.approx(41.0)


def test_trend_of_noise_has_low_r2_and_flat_lines_never_reach_limits() -> None:
    noisy = [(float(t), 100.0 + (7 if t % 2 else -7)) for t in range(40)]
    trend = linear_trend(noisy)
    assert trend is not None and trend.r2 < 0.1
    flat = linear_trend([(float(t), 5.0) for t in range(10)])
    assert flat is not None and flat.slope == 0 and flat.time_to(10, now=9) is None
    assert linear_trend([(0.0, 1.0), (1.0, 2.0)]) is None  # too few points


def test_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile(range(1, 101), 50) == pytest.approx(50.5)
    assert percentile(range(1, 101), 95) == pytest.approx(95.05)


# --------------------------------------------------------------- hysteresis


def _judge_value(reading: Reading, config) -> list[CheckResult]:
    status = Status(reading.data["status"])
    return [CheckResult("test.value", "test", reading.target, status, f"now {status}")]


@pytest.fixture
def test_judge():
    JUDGES["test"] = _judge_value
    yield
    del JUDGES["test"]


def _snap(status: str, n: int = 1) -> Snapshot:
    return Snapshot(n, time.time(), 1.0, (Reading("test", "t", time.time(), {"status": status}),))


def test_hysteresis_raises_after_n_and_clears_after_m(test_judge) -> None:
    rules = Rules(parse_config(""), raise_after=3, clear_after=2)
    seen = [
        rules.evaluate(_snap(s)).checks[0].status.value
        for s in ["ok", "critical", "critical", "critical", "ok", "critical", "ok", "ok"]
    ]
    assert seen == ["ok", "ok", "ok", "critical", "critical", "critical", "critical", "ok"]
    held = rules.evaluate(_snap("warning")).checks[0]
    assert "raising to warning: 1/3" in held.summary


def test_a_check_first_seen_failing_is_raised_at_once(test_judge) -> None:
    # A one-shot check has no history, and a console that starts mid-incident
    # shows the incident at once: raise_after counts only changes after first sight.
    rules = Rules(parse_config(""), raise_after=3, clear_after=3)
    first = rules.evaluate(_snap("critical")).checks[0]
    assert first.status is Status.CRITICAL and first.summary == "now critical"
    # From then on hysteresis applies in both directions.
    better = rules.evaluate(_snap("ok")).checks[0]
    assert better.status is Status.CRITICAL and "clearing to ok: 1/3" in better.summary


def test_one_shot_rules_decide_on_one_poll(test_judge) -> None:
    report = Rules(parse_config("")).evaluate(_snap("critical"))
    assert report.status is Status.CRITICAL and report.status.exit_code == 2


def test_overall_status_is_the_worst() -> None:
    snap = _snap("ok")
    mk = lambda i, s: CheckResult(f"c{i}", "x", "t", s, "")  # noqa: E731
    report = Report(snap, (mk(1, Status.OK), mk(2, Status.WARNING), mk(3, Status.UNKNOWN)))
    assert report.status is Status.UNKNOWN
    assert report.counts == {"ok": 1, "warning": 1, "critical": 0, "unknown": 1}
    report = Report(snap, (mk(1, Status.UNKNOWN), mk(2, Status.CRITICAL)))
    assert report.status is Status.CRITICAL


# ------------------------------------------------------------------- poller


class Quick:
    component = "test"

    def __init__(self, status: str = "ok") -> None:
        self.status = status
        self.calls = 0

    def targets(self) -> list[str]:
        return ["quick"]

    async def collect(self) -> list[Reading]:
        self.calls += 1
        return [Reading("test", "quick", time.time(), {"status": self.status})]

    async def close(self) -> None:
        pass


class Hangs:
    """Never answers, and shrugs off the poller's cancellation like a wedged driver
    (only the event loop's shutdown gets through)."""

    component = "test"

    def __init__(self) -> None:
        self.calls = 0

    def targets(self) -> list[str]:
        return ["stuck"]

    async def collect(self) -> list[Reading]:
        self.calls += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)
        return []

    async def close(self) -> None:
        pass


class Raises(Quick):
    def targets(self) -> list[str]:
        return ["broken"]

    async def collect(self) -> list[Reading]:
        raise RuntimeError("driver exploded")


class Down(Quick):
    def targets(self) -> list[str]:
        return ["down"]

    async def collect(self) -> list[Reading]:
        self.calls += 1
        return [Reading("test", "down", time.time(), error="refused", error_kind="unreachable")]


async def test_a_hanging_collector_cannot_delay_the_round_or_the_others() -> None:
    async def go():
        quick, hangs, raises = Quick(), Hangs(), Raises()
        poller = Poller([quick, hangs, raises], deadline=0.3)
        t0 = time.perf_counter()
        first = await poller.poll()
        elapsed = time.perf_counter() - t0
        second = await poller.poll()
        return elapsed, first, second, hangs

    elapsed, first, second, hangs = await go()
    assert elapsed < 2.0
    by_target = {r.target: r for r in first.readings}
    assert by_target["quick"].ok
    assert by_target["stuck"].error_kind == "timeout"
    assert "no answer within 0.3s" in by_target["stuck"].error
    assert by_target["stuck"].stale_since is not None
    assert by_target["broken"].error == "RuntimeError: driver exploded"
    # The stuck collector is not started again on top of itself.
    assert hangs.calls == 1
    again = {r.target: r for r in second.readings}
    assert "still busy" in again["stuck"].error
    assert again["stuck"].stale_since == by_target["stuck"].stale_since


async def test_lost_target_is_retried_with_capped_exponential_backoff() -> None:
    clock = [1000.0]
    down = Down()
    poller = Poller([down], deadline=1, backoff_base=1, backoff_cap=4, clock=lambda: clock[0])

    async def rounds(n: int, step: float) -> list[int]:
        calls = []
        for _ in range(n):
            await poller.poll()
            calls.append(down.calls)
            clock[0] += step
        return calls

    calls = await rounds(12, 1.0)
    # attempts at t=0 and 1, then after waits of 2, 4 and 4 (capped) seconds
    assert calls == [1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5]


async def test_stale_since_marks_the_first_failure_and_clears_on_recovery() -> None:
    clock = [100.0]

    class Flaky(Quick):
        failing = True

        async def collect(self) -> list[Reading]:
            if self.failing:
                return [Reading("test", "quick", clock[0], error="boom", error_kind="internal")]
            return await super().collect()

    flaky = Flaky()
    poller = Poller([flaky], deadline=1, clock=lambda: clock[0])

    async def go() -> list[Reading]:
        out = []
        for failing in (True, True, False):
            flaky.failing = failing
            out.append((await poller.poll()).readings[0])
            clock[0] += 5
        return out

    first, second, recovered = await go()
    assert first.stale_since == 100.0 and second.stale_since == 100.0
    assert recovered.ok and recovered.stale_since is None


async def test_run_schedules_the_next_round_after_the_previous_ends() -> None:
    class Slow(Quick):
        active = 0
        overlaps = 0

        async def collect(self) -> list[Reading]:
            Slow.active += 1
            Slow.overlaps = max(Slow.overlaps, Slow.active)
            await asyncio.sleep(0.05)
            Slow.active -= 1
            return await super().collect()

    slow = Slow()
    poller = Poller([slow], deadline=1)
    snapshots: list[Snapshot] = []

    async def go():
        wake = asyncio.Event()
        task = asyncio.create_task(poller.run(0.01, snapshots.append, wake=wake))
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    await go()
    assert len(snapshots) >= 3
    assert Slow.overlaps == 1
    starts = [s.started_at for s in snapshots]
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(starts))


async def test_run_wakes_at_once_even_when_paused_and_stops_when_told() -> None:
    """The one loop: paused skips rounds but `wake` still starts one ("poll now"),
    `stop` ends it after the round under way, `rounds` bounds it."""
    poller = Poller([Quick()], deadline=1)
    seen: list[Snapshot] = []
    paused = [True]

    async def go() -> int:
        wake, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            poller.run(60, seen.append, wake=wake, paused=lambda: paused[0], stop=stop)
        )
        await asyncio.sleep(0.1)
        assert seen == []  # paused from the start: no round
        wake.set()
        await asyncio.sleep(0.1)
        assert len(seen) == 1  # poll now, while paused, without waiting the interval
        paused[0] = False
        wake.set()
        await asyncio.sleep(0.1)
        assert len(seen) == 2
        stop.set()  # ends the 60 s rest at once
        return await asyncio.wait_for(task, 2)

    assert (await go()) == 2

    async def bounded() -> int:
        return await poller.run(0.01, seen.append, rounds=3)

    before = len(seen)
    assert (await bounded()) == 3 and len(seen) == before + 3


async def test_run_hands_errors_to_on_error_and_goes_on_or_ends_without_it() -> None:
    poller = Poller([Quick()], deadline=1)
    errors: list[Exception] = []
    starts: list[int] = []

    def judge(snapshot: Snapshot) -> None:
        if snapshot.round % 2:
            raise ValueError(f"round {snapshot.round}")

    async def go(**kw) -> int:
        return await poller.run(0.01, judge, rounds=2, on_start=lambda: starts.append(1), **kw)

    # rounds 1 and 3 fail and are told; 2 and 4 count
    assert (await go(on_error=errors.append)) == 2
    assert [str(e) for e in errors] == ["round 1", "round 3"] and len(starts) == 4
    with pytest.raises(ValueError, match="round 5"):
        (await go())


async def _async_append(seen: list[Snapshot], snapshot: Snapshot) -> None:
    await asyncio.sleep(0)
    seen.append(snapshot)


async def test_run_awaits_an_async_callback() -> None:
    poller = Poller([Quick()], deadline=1)
    seen: list[Snapshot] = []
    n = await poller.run(0.01, lambda s: _async_append(seen, s), rounds=2)
    assert n == 2 and [s.round for s in seen] == [1, 2]


def test_a_one_round_blip_keeps_the_hidden_checks_state(test_judge) -> None:
    rules = Rules(parse_config(""), raise_after=1, clear_after=3)
    rules.evaluate(_snap("critical"))
    blip = Snapshot(2, time.time(), 1.0, (Reading("test", "t", time.time(), error="down"),))
    JUDGES["test"] = lambda r, c: [] if not r.ok else _judge_value(r, c)
    rules.evaluate(blip)
    # back, and better: still held critical, clearing needs 3 rounds, not a fresh start
    back = rules.evaluate(_snap("ok")).checks[0]
    assert back.status is Status.CRITICAL and "clearing to ok: 1/3" in back.summary


async def test_collectors_that_opt_out_are_retried_every_round() -> None:
    clock = [1000.0]
    down = Down()
    down.backoff = False
    poller = Poller([down], deadline=1, clock=lambda: clock[0])

    async def rounds(n: int) -> None:
        for _ in range(n):
            await poller.poll()
            clock[0] += 1

    await rounds(6)
    assert down.calls == 6


async def test_the_poller_closes_the_http_client_its_collectors_share(
    tmp_path, write_config
) -> None:
    """`check --only secrets` uses the shared HttpClient without the services
    collector: the Poller owns it and closes it, so nothing is left unclosed."""
    import json
    import secrets

    from collectors.poller import build_collectors
    from tests.conftest import run_cli
    from tests.helpers import http_server, respond

    hits: list[str] = []

    def handle(req) -> None:
        hits.append(req.path)
        if req.path == "/health/security":
            body = {"jwt": {"algorithm": "HS256", "accessKeyFingerprint": "sha256:00"}}
            respond(req, 200, json.dumps(body))
        else:
            respond(req, 200, '{"status": "pass"}')

    env = tmp_path / ".env"
    env.write_text(
        f"JWT_SECRET={secrets.token_urlsafe(48)}\nJWT_REFRESH_SECRET={secrets.token_urlsafe(48)}\n"
    )
    with http_server(handle) as url:
        text = (
            f'[[services]]\nname = "users"\nurl = "{url}"\ndetail_paths = ["/health/security"]\n'
            f'[secrets]\nstore = {{ kind = "dotenv", path = "{env}" }}\n'
        )
        res = run_cli("check", "--config", str(write_config(text)), "--only", "secrets")
        assert "/health/security" in hits  # the secrets collector did use the client
        assert res.stderr == ""
        assert json.loads(res.stdout)["checks"]

        async def one_round() -> tuple[bool, bool]:
            collectors = build_collectors(parse_config(text), ["secrets"])
            (http,) = collectors.shared
            poller = Poller(collectors, deadline=5)
            await poller.poll()
            opened = http._client is not None
            await poller.aclose()
            return opened, http._client is None

        assert await one_round() == (True, True)
