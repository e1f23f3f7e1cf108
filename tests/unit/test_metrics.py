"""pushd.metrics on a fake clock: counters, the console's history buckets, gauges per scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pushd import clock, metrics

T0 = 1_700_000_000_000_000  # a multiple of 10 s


def values(m: metrics.Metrics, gauges: dict[str, metrics.QueueGauges]) -> dict[str, float]:
    text = m.render(gauges).decode()
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_attempts_fill_ten_second_steps_and_old_ones_fall_off() -> None:
    fake = clock.FakeClock(T0)
    m = metrics.Metrics(fake)
    m.record_attempt("q", status=200, ok=True, latency_s=0.01, lateness_s=0.0)
    m.record_attempt("q", status=503, ok=False, latency_s=0.01, lateness_s=0.0)
    fake.advance_seconds(9.999)
    m.record_attempt("q", status=None, ok=False, latency_s=1.0, lateness_s=-1.0)
    fake.advance_seconds(0.001)  # the next step
    m.record_attempt("q", status=200, ok=True, latency_s=0.01, lateness_s=0.5)
    steps = m.history("q")
    assert len(steps) == metrics.HISTORY_STEPS
    assert [(s.delivered, s.failed) for s in steps[-2:]] == [(1, 2), (1, 0)]
    assert steps[-1].start_s == T0 // 1_000_000 + 10
    assert all((s.delivered, s.failed) == (0, 0) for s in steps[:-2])
    fake.advance_seconds(metrics.HISTORY_STEP_S * metrics.HISTORY_STEPS)
    assert all((s.delivered, s.failed) == (0, 0) for s in m.history("q"))
    assert m.history("never") == [metrics.Step(s.start_s) for s in m.history("q")]


def test_counters_by_status_class_and_gauges_of_current_queues_only() -> None:
    m = metrics.Metrics(clock.FakeClock(T0))
    m.record_attempt("q", status=404, ok=False, latency_s=0.1, lateness_s=0.0)
    m.record_attempt("q", status=None, ok=False, latency_s=0.1, lateness_s=0.0)
    m.record_added("q", 5)
    gauge = metrics.QueueGauges(
        waiting=3, in_flight=1, enforced_rate=2.5, oldest_eta_age_s=4.0, paused=True, dead_letters=2
    )
    first = values(m, {"q": gauge, "r": gauge})
    assert first["pushd_attempts_failed_total[('queue', 'q'), ('status_class', '4xx')]"] == 1
    assert first["pushd_attempts_failed_total[('queue', 'q'), ('status_class', 'none')]"] == 1
    assert first["pushd_tasks_added_total[('queue', 'q')]"] == 5
    assert first["pushd_enforced_rate[('queue', 'r')]"] == 2.5
    assert first["pushd_queue_paused[('queue', 'q')]"] == 1
    # "r" left queue.yaml: its gauges go; the counters of "q" stay.
    second = values(m, {"q": gauge})
    assert "pushd_enforced_rate[('queue', 'r')]" not in second
    assert second["pushd_tasks_added_total[('queue', 'q')]"] == 5


async def test_the_exposition_in_slices_is_the_librarys_own_text_less_hidden_queues() -> None:
    """render_async builds the text ``SLICE`` queues at a time (the event loop gets a turn
    between slices); the text is the one ``generate_latest`` writes in one go."""
    from prometheus_client import generate_latest

    m = metrics.Metrics(clock.FakeClock(T0))
    queues = [f"q{i:03d}" for i in range(metrics.SLICE * 2 + 7)]
    for i, q in enumerate(queues):
        m.record_added(q)
        m.record_attempt(
            q, status=200 if i % 3 else 503, ok=bool(i % 3), latency_s=0.1, lateness_s=0
        )
    gauge = metrics.QueueGauges(
        waiting=1,
        in_flight=0,
        enforced_rate=1.0,
        oldest_eta_age_s=0.0,
        paused=False,
        dead_letters=0,
    )
    gauges = dict.fromkeys(queues, gauge)
    text = (await m.render_async(gauges)).decode()
    recorded = generate_latest(m.registry).decode()
    assert text.startswith(recorded)
    families = list(text_string_to_metric_families(text))
    waiting = next(f for f in families if f.name == "pushd_tasks_waiting")
    assert [s.labels["queue"] for s in waiting.samples] == queues
    assert len({f.name for f in families}) == len(families)  # each family once, not per slice
    hidden = set(queues[::2])
    shown = (await m.render_async(gauges, hidden)).decode()
    assert {
        s.labels.get("queue") for f in text_string_to_metric_families(shown) for s in f.samples
    } == (set(queues) - hidden)
    assert shown == m.render(gauges, hidden).decode()


def test_attempts_counted_in_batches_show_as_each_observed_at_every_scrape() -> None:
    """record_attempt counts in plain integers and hands them to prometheus_client in batches:
    a scrape (render or the registry's own generate_latest) at any point, before or after a
    batch is full, shows exactly what observing each attempt would have shown."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    m = metrics.Metrics(clock.FakeClock(T0))
    r = CollectorRegistry()
    latency = Histogram("lat", "", buckets=metrics.LATENCY_BUCKETS_S, registry=r)
    lateness = Histogram("late", "", buckets=metrics.LATENESS_BUCKETS_S, registry=r)
    delivered = Counter("ok", "", registry=r)

    def seen(text: str, name: str) -> list[tuple[str, float]]:
        return [
            (s.name.removeprefix(name), s.value)
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if f.name == name and not s.name.endswith("_created")
        ]

    # every bound exactly, between bounds, beyond the last; lateness negative, zero, positive
    samples = [*metrics.LATENCY_BUCKETS_S, 0.0, 0.007, 3.0, 1e6]
    for i in range(metrics.FLUSH_EVERY + 50):
        lat = samples[i % len(samples)]
        late = (i % 7 - 2) * 0.3
        ok = i % 5 != 0
        m.record_attempt("q", status=200 if ok else 500, ok=ok, latency_s=lat, lateness_s=late)
        latency.observe(lat)
        lateness.observe(max(0.0, late))
        if ok:
            delivered.inc()
        if i in (3, metrics.FLUSH_EVERY - 1, metrics.FLUSH_EVERY + 49):
            ours = generate_latest(m.registry).decode() if i == 3 else m.render({}).decode()
            theirs = generate_latest(r).decode()
            for mine, name in [
                ("pushd_delivery_latency_seconds", "lat"),
                ("pushd_eta_lateness_seconds", "late"),
                ("pushd_tasks_delivered", "ok"),
            ]:
                assert seen(ours, mine) == seen(theirs, name), (i, mine)
