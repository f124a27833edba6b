"""What must hold after a soak run, checked once the load stopped and the system drained, and the
table that reports it: one row per invariant with its counts and the first violations, each with
the log lines that explain it where the processes wrote any.

 1. No 5xx except a 503 with Retry-After while a fault was injected (its window plus a grace),
    every request answered (but one in flight on a machine as it was lost), none waiting longer
    than 10 s.
 2. Every variant's stock = its stock before the load + the staff's recorded changes - the units
    held by orders that are not cancelled; never negative (sampled during the run too).
 3. Every order ends in a state its payment explains (the built-in gateway's ledger): confirmed,
    shipped or delivered with one capture; cancelled with no capture, or with a capture and one
    refund; never pending (a declined order waits for another card only until the expiry, 1
    minute in a soak, which the drain waits for). A declined card never confirms, a good card is
    never declined.
 4. Exactly one email per order and kind (by Message-ID, which is the outbox event's id), and at
    most one delivery of each, except a second one that a killed worker explains (killed, alone
    or with its whole machine, between sending and committing: the documented crash window).
 5. The outbox drained, nothing parked (a column of the outbox named *park* set, or one named
    *error* or *fail* on an event still unpublished) or dead-lettered but what the injector
    poisoned for that, every other event's effect recorded in the inbox (processed_events).
 6. Every read right after a user's own write saw that write.
 7. A checkout submitted twice (same key) made one order.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from actors.dead_letters import DeadLetterError, counts, peek
from actors.orders import capture_key, refund_key
from domain.events import SEND_ORDER_EMAIL
from tests.soak.client import CANCELLED
from tests.soak.journal import Journal, RequestRecord
from tests.soak.journeys import GOOD_CARD
from tests.soak.tree import ShopProcess, Tree

SLOW_SECONDS = 10.0
WORKER_KILLS = ("kill-worker", "lose-machine")  # the faults that SIGKILL a worker
CRASH_WINDOW_SECONDS = 5.0  # a kill this soon after a delivery may have prevented its commit
EXAMPLES = 5
SETTLED_STATUSES = ("confirmed", "shipped", "delivered")

SELECT_STOCK = "SELECT id, sku, stock_on_hand FROM variants"
SELECT_HELD = """
    SELECT l.variant_id, sum(l.quantity)::int AS held
    FROM order_lines l JOIN orders o ON o.id = l.order_id
    WHERE o.status <> 'cancelled' AND l.variant_id IS NOT NULL
    GROUP BY l.variant_id
"""
# A declined order is cancelled by the expiry tick (every minute) once UNPAID_ORDER_MINUTES pass.
EXPIRY_GRACE = 120.0

SELECT_ORDERS = """
    SELECT o.id, o.number, o.status, p.status AS payment, p.decline_code, p.attempt,
           extract(epoch FROM now() - o.placed_at)::float8 AS age_seconds
    FROM orders o LEFT JOIN payments p ON p.order_id = o.id
    ORDER BY o.id
"""
SELECT_LEDGER = "SELECT idempotency_key, outcome, attempts FROM test_gateway_charges"
SELECT_MAIL_EVENTS = """
    SELECT event_id, actor_name, payload FROM outbox
    WHERE actor_name IN ('email.send_order_email', 'orders.check_stock')
"""
SELECT_MOVES = "SELECT order_id, to_status FROM order_transitions WHERE from_status IS NOT NULL"
SELECT_UNPUBLISHED = """
    SELECT event_id, actor_name, payload, created_at FROM outbox
    WHERE published_at IS NULL ORDER BY created_at
"""
COUNT_EVENTS = "SELECT count(*) FROM outbox"
SELECT_WRITTEN = "SELECT created_at FROM outbox WHERE event_id = $1"
SELECT_PARK_COLUMNS = """
    SELECT column_name FROM information_schema.columns
    WHERE table_name = 'outbox'
      AND (column_name LIKE '%park%' OR column_name LIKE '%error%' OR column_name LIKE '%fail%')
"""
SELECT_WITHOUT_EFFECT = """
    SELECT o.event_id, o.actor_name, o.payload, o.published_at IS NOT NULL AS published
    FROM outbox o
    LEFT JOIN processed_events p ON p.consumer = o.actor_name AND p.event_id = o.event_id
    WHERE p.event_id IS NULL
    ORDER BY o.created_at
"""


@dataclass
class Row:
    name: str
    passed: bool
    counts: str
    examples: list[str] = field(default_factory=list)


class Logs:
    """The processes' JSON log lines, found by request id or message id."""

    def __init__(self, processes: Iterable[ShopProcess]) -> None:
        self.by_request: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.by_message: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for process in processes:
            for line in process.events():
                if "request_id" in line:
                    self.by_request[str(line["request_id"])].append((process.name, line))
                if "message_id" in line:
                    self.by_message[str(line["message_id"])].append((process.name, line))

    def explain_request(self, request_id: str) -> str:
        lines = self.by_request.get(request_id, [])
        failed = [x for x in lines if x[1].get("event") == "request.failed"] or lines[-1:]
        return "; ".join(_line(name, line) for name, line in failed[-1:])

    def explain_message(self, message_id: str) -> str:
        lines = [x for x in self.by_message.get(message_id, []) if x[1].get("level") != "debug"]
        return "; ".join(_line(name, line) for name, line in lines[-2:])


def _line(process: str, line: dict[str, Any]) -> str:
    """A log line in one short line: where, what, and the error's last words."""
    facts = {
        k: v
        for k, v in line.items()
        if k not in ("timestamp", "level", "logger", "request_id", "exception", "event")
    }
    text = f"[{process}] {line.get('level', '?')} {line.get('event', '')} {json.dumps(facts)}"
    exception = line.get("exception")
    if isinstance(exception, list) and exception:  # structlog's dict_tracebacks
        last = exception[-1]
        frames = last.get("frames") or [{}]
        where = f"{frames[-1].get('filename', '?')}:{frames[-1].get('lineno', '?')}"
        text += f" {last.get('exc_type')}: {last.get('exc_value')} at {where}"
    elif exception:
        text += f" {str(exception).strip().splitlines()[-1]}"
    return " ".join(text.split())[:600]  # one line, however many the error had


def _at(journal: Journal, moment: float) -> str:
    return f"+{moment - journal.started:.1f}s"


# -- 1 ---------------------------------------------------------------------------------------


def check_requests(journal: Journal, logs: Logs, grace: float, names: dict[int, str]) -> Row:
    now = time.time()
    windows = [(f.started, (f.ended or now) + grace) for f in journal.faults if f.kind != "poison"]
    # A request in flight on a machine as it was lost gets no answer (behind NGINX: a 502);
    # one sent to it while it was down found another machine (the client's balancer).
    lost = [
        (f.started, (f.ended or now) + grace, f.target)
        for f in journal.faults
        if f.kind == "lose-machine"
    ]
    problems: list[tuple[RequestRecord, str]] = []
    kinds: Counter[str] = Counter()
    allowed = cut = 0
    for record in journal.requests:
        problem = None
        if record.status is None:
            on = names.get(record.port, "").partition("/")[0]
            if any(a <= record.ended and record.started <= b and on == m for a, b, m in lost):
                cut += 1
            elif record.error != CANCELLED:
                problem = f"no answer ({record.error})"
        elif record.status >= 500:
            in_fault = any(a <= record.ended and record.started <= b for a, b in windows)
            if record.status == 503 and record.retry_after and in_fault:
                allowed += 1
            else:
                problem = f"{record.status}" + (
                    " without Retry-After"
                    if record.status == 503 and not record.retry_after
                    else ""
                    if in_fault
                    else " outside any fault"
                )
        if problem is None and record.seconds > SLOW_SECONDS:
            problem = f"waited {record.seconds:.1f} s"
        if problem is not None:
            problems.append((record, problem))
            kinds[problem.split(" (")[0]] += 1
    answered = [r for r in journal.requests if r.status is not None]
    slowest = max((r.seconds for r in answered), default=0.0)
    counts_text = (
        f"{len(journal.requests)} requests; 503 in a fault {allowed}; cut by a lost machine "
        f"{cut}; violations "
        f"{len(problems)}" + (f" ({_top(kinds)})" if kinds else "") + f"; slowest {slowest:.1f} s"
    )
    unanswered = [r for r, problem in problems if r.status is None]
    by_port = Counter(r.port for r in unanswered)
    examples = [
        f"no answer from {names.get(port, '?')} (port {port}): {n} request(s) between "
        f"{_at(journal, min(r.started for r in unanswered if r.port == port))} and "
        f"{_at(journal, max(r.started for r in unanswered if r.port == port))}"
        for port, n in sorted(by_port.items())
    ]
    examples += journal.stalls
    examples += [
        f"{_at(journal, r.started)} {r.actor} {r.method} {r.path} -> {problem} "
        f"[port {r.port}, {r.request_id}] {logs.explain_request(r.request_id)}".rstrip()
        for r, problem in problems[:EXAMPLES]
    ]
    return Row("no 5xx outside faults, none over 10 s", not problems, counts_text, examples)


def _top(counter: Counter[str], n: int = 4) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counter.most_common(n))


# -- 2 ---------------------------------------------------------------------------------------


async def check_stock(tree: Tree, journal: Journal, initial: dict[int, int]) -> Row:
    assert tree.pool is not None
    stock = {
        row["id"]: (row["sku"], row["stock_on_hand"]) for row in await tree.pool.fetch(SELECT_STOCK)
    }
    held = {row["variant_id"]: row["held"] for row in await tree.pool.fetch(SELECT_HELD)}
    certain: Counter[int] = Counter()
    uncertain: dict[int, list[int]] = defaultdict(list)
    for change in journal.stock_changes:
        if change.certain:
            certain[change.variant_id] += change.amount
        else:
            uncertain[change.variant_id].append(change.amount)
    examples: list[str] = []
    wrong = 0
    for variant_id in sorted(set(stock) | set(initial)):
        sku, now = stock.get(variant_id, ("(deleted)", 0))
        before = initial.get(variant_id, 0)
        expected = before + certain[variant_id] - held.get(variant_id, 0)
        if now < 0 or not _explained(now - expected, uncertain[variant_id]):
            wrong += 1
            if len(examples) < EXAMPLES:
                maybe = f" (or ± some of {uncertain[variant_id]})" if uncertain[variant_id] else ""
                examples.append(
                    f"variant {variant_id} {sku}: {before} before + {certain[variant_id]} staff "
                    f"- {held.get(variant_id, 0)} held = {expected}{maybe}, but stock is {now}"
                )
    negative = [s for s in journal.samples if s.negative]
    for sample in negative[: max(0, EXAMPLES - len(examples))]:
        examples.append(
            f"{_at(journal, sample.at)}: {sample.negative} variant(s) below zero (lowest "
            f"{sample.lowest})"
        )
    changes = len(journal.stock_changes)
    unsure = sum(len(v) for v in uncertain.values())
    counts_text = (
        f"{len(stock)} variants, {wrong} off; staff changes {changes} ({unsure} unanswered); "
        f"{len(journal.samples)} samples, {len(negative)} with negative stock"
    )
    return Row(
        "stock = before + staff changes - held", not wrong and not negative, counts_text, examples
    )


def _explained(difference: int, unsure: list[int]) -> bool:
    """Whether some of the unanswered staff changes (each applied or not) make up `difference`."""
    if difference == 0:
        return True
    return any(
        sum(chosen) == difference
        for size in range(1, len(unsure) + 1)
        for chosen in combinations(unsure, size)
    )


# -- 3 ---------------------------------------------------------------------------------------


async def check_payments(tree: Tree, journal: Journal) -> Row:
    assert tree.pool is not None
    orders = await tree.pool.fetch(SELECT_ORDERS)
    ledger = {row["idempotency_key"]: row for row in await tree.pool.fetch(SELECT_LEDGER)}
    cards = {n: a.card for a in journal.checkouts for n in a.numbers}
    statuses: Counter[str] = Counter()
    problems = []
    refunded = waiting = 0
    for order in orders:
        statuses[order["status"]] += 1
        capture = ledger.get(capture_key(order["id"], order["attempt"] or 1))  # the last card's
        refund = ledger.get(refund_key(order["id"]))
        captured = capture is not None and capture["outcome"] == "captured"
        payment = order["payment"]
        problem = None
        if order["status"] in SETTLED_STATUSES:
            if not captured or payment != "captured" or refund is not None:
                problem = "settled without exactly one capture"
        elif order["status"] == "cancelled":
            if captured:
                refunded += refund is not None
                if refund is None or refund["outcome"] != "refunded" or payment != "refunded":
                    problem = "cancelled after a capture, not refunded"
            elif payment not in ("voided", "declined") or refund is not None:
                problem = "cancelled, payment neither voided nor declined"
        elif payment == "declined" and not captured and refund is None:
            # Waiting for another card: explained until its expiry has had a tick to run.
            if order["age_seconds"] <= tree.options.unpaid_order_minutes * 60 + EXPIRY_GRACE:
                waiting += 1
            else:
                problem = "declined and still held past its unpaid-order expiry"
        else:
            problem = "still pending after the drain (its payment never settled)"
        card = cards.get(order["number"])
        if problem is None and card is not None:
            # A declining card ends cancelled, or pending with the decline while the order
            # waits for another card; never captured.
            if card != GOOD_CARD and (
                captured or (order["status"] != "cancelled" and payment != "declined")
            ):
                problem = f"paid with the declining card {card}"
            elif card == GOOD_CARD and payment == "declined":
                problem = f"declined with the good card ({order['decline_code']})"
        if problem is not None:
            ledger_text = (
                f"capture {capture['outcome'] if capture else None}, "
                f"refund {refund['outcome'] if refund else None}"
            )
            problems.append(
                f"order {order['number']} (id {order['id']}): {problem}: status {order['status']}, "
                f"payment {payment}, {ledger_text}"
            )
    counts_text = (
        f"{len(orders)} orders ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}); "
        f"{refunded} refunded; {waiting} declined and waiting for another card; "
        f"{len(problems)} unexplained"
    )
    return Row(
        "every order explained by its payment", not problems, counts_text, problems[:EXAMPLES]
    )


# -- 4 ---------------------------------------------------------------------------------------


async def check_emails(tree: Tree, journal: Journal, logs: Logs) -> Row:
    assert tree.pool is not None and tree.smtp is not None
    messages = list(zip(list(tree.smtp.messages), list(tree.smtp.arrived), strict=False))
    arrivals: dict[str, list[float]] = defaultdict(list)
    for message, at in messages:
        local = str(message["Message-ID"] or "").strip("<>").partition("@")[0]
        arrivals[local].append(at)
    events = await tree.pool.fetch(SELECT_MAIL_EVENTS)
    moves = await tree.pool.fetch(SELECT_MOVES)
    orders = await tree.pool.fetch("SELECT id, number FROM orders")
    numbers = {row["id"]: row["number"] for row in orders}
    expected: Counter[tuple[int, str]] = Counter({(o, "placed"): 1 for o in numbers})
    expected.update((row["order_id"], row["to_status"]) for row in moves)
    # A declined capture writes its "pay with another card" email's event with the decline
    # itself (actors.orders.capture): one email for each such event.
    expected.update(
        (event["payload"]["order_id"], "payment_declined")
        for event in events
        if event["actor_name"] == SEND_ORDER_EMAIL.name
        and event["payload"].get("kind") == "payment_declined"
    )
    delivered: Counter[tuple[int, str]] = Counter()
    problems = []
    kills = [f.started for f in journal.faults if f.kind in WORKER_KILLS]
    repeats = explained = 0
    for event in events:
        local = uuid.UUID(str(event["event_id"])).hex
        times = sorted(arrivals.get(local, []))
        if event["actor_name"] == SEND_ORDER_EMAIL.name and times:
            delivered[(event["payload"]["order_id"], event["payload"]["kind"])] += 1
        if len(times) > 1:
            repeats += 1
            crash = any(times[0] - 1 <= k <= times[0] + CRASH_WINDOW_SECONDS for k in kills)
            if len(times) == 2 and crash:
                explained += 1
            else:
                problems.append(
                    f"{event['actor_name']} {dict(event['payload'])}: delivered {len(times)} times "
                    f"({', '.join(_at(journal, t) for t in times)}), no worker killed between: "
                    f"{logs.explain_message(str(event['event_id']))}"
                )
    for key in sorted(set(expected) | set(delivered)):
        if delivered[key] != expected[key]:
            order_id, kind = key
            problems.append(
                f"order {numbers.get(order_id, order_id)} (id {order_id}) {kind}: "
                f"{delivered[key]} email(s), expected {expected[key]}"
            )
    order_emails = sum(delivered.values())
    counts_text = (
        f"{sum(expected.values())} order emails expected, {order_emails} delivered; "
        f"{len(messages)} SMTP deliveries in all ({tree.smtp.refused} refused by the injector); "
        f"{repeats} Message-IDs delivered twice ({explained} in a crash window)"
    )
    return Row("one email per order and kind", not problems, counts_text, problems[:EXAMPLES])


# -- 5 ---------------------------------------------------------------------------------------


async def check_outbox(tree: Tree, journal: Journal, logs: Logs) -> Row:
    assert tree.pool is not None and tree.broker is not None
    problems = []
    poisoned, unpublishable = set(journal.poisoned), set(journal.unpublishable)
    total = int(await tree.pool.fetchval(COUNT_EVENTS))
    waiting = [
        row
        for row in await tree.pool.fetch(SELECT_UNPUBLISHED)
        if str(row["event_id"]) not in unpublishable
    ]
    if waiting:
        first = waiting[0]
        problems.append(
            f"{len(waiting)} event(s) never published, the oldest {first['actor_name']} "
            f"{dict(first['payload'])} from {_at(journal, first['created_at'].timestamp())}"
        )
    columns = [row["column_name"] for row in await tree.pool.fetch(SELECT_PARK_COLUMNS)]
    parked: set[str] = set()
    for column in columns:  # names from information_schema: real columns, quoted
        sql = f'SELECT event_id FROM outbox WHERE "{column}" IS NOT NULL'
        if "park" not in column:
            # An error column is also set by a publish that failed once (the broker cut before
            # its confirm) and went through on a later try: held back only while unpublished.
            sql += " AND published_at IS NULL"
        parked.update(str(row["event_id"]) for row in await tree.pool.fetch(sql))
    for event_id in sorted(parked - unpublishable)[:EXAMPLES]:
        problems.append(
            f"event {event_id} parked, but it was publishable: {logs.explain_message(event_id)}"
        )
    for event_id in sorted(unpublishable - parked):
        how = f"none of {columns} is set" if columns else "the outbox has no column to park it in"
        written = await tree.pool.fetchval(SELECT_WRITTEN, uuid.UUID(event_id))
        when = _at(journal, written.timestamp()) if written else "?"
        problems.append(
            f"the unpublishable event {event_id} (written {when}) is not parked ({how})"
        )
    missing = [
        row
        for row in await tree.pool.fetch(SELECT_WITHOUT_EFFECT)
        if str(row["event_id"]) not in poisoned
    ]
    for row in missing[:EXAMPLES]:
        state = "published" if row["published"] else "unpublished"
        problems.append(
            f"{row['actor_name']} {dict(row['payload'])} ({state}) has no effect in the inbox: "
            f"{logs.explain_message(str(row['event_id']))}"
        )
    if len(missing) > EXAMPLES:
        problems.append(f"... {len(missing) - EXAMPLES} more events without their effect")
    try:
        dead, dead_ids = await asyncio.to_thread(_dead_letters, tree)
    except DeadLetterError as exc:
        dead, dead_ids = -1, set()
        problems.append(f"could not read the dead letters: {exc}")
    for message_id in sorted(dead_ids - poisoned)[:EXAMPLES]:
        explained = logs.explain_message(message_id)
        problems.append(f"dead letter {message_id} was not poisoned: {explained}")
    if dead > len(dead_ids):
        problems.append(f"{dead - len(dead_ids)} dead letter(s) could not be read")
    for message_id in sorted(poisoned - unpublishable - dead_ids):
        explained = logs.explain_message(message_id)
        problems.append(f"poisoned event {message_id} is not in the dead letters: {explained}")
    counts_text = (
        f"{total} events, {len(waiting)} unpublished, {len(parked)} parked, {len(missing)} "
        f"without effect; {dead} dead letters; poisoned {len(poisoned) - len(unpublishable)} "
        f"for the dead letters, {len(unpublishable)} unpublishable"
    )
    return Row(
        "outbox drained, inbox complete, only poison parked or dead",
        not problems,
        counts_text,
        problems[: EXAMPLES + 3],
    )


def _dead_letters(tree: Tree) -> tuple[int, set[str]]:
    assert tree.broker is not None
    per_queue = counts(tree.broker)
    ids: set[str] = set()
    for queue, count in per_queue.items():
        if count:
            ids.update(letter.message_id for letter in peek(tree.broker, queue, limit=count + 10))
    return sum(per_queue.values()), ids


# -- 6, 7 ------------------------------------------------------------------------------------


def check_reads(journal: Journal) -> Row:
    failed = [r for r in journal.reads if not r.ok]
    by_kind = Counter(r.what for r in journal.reads)
    failed_kind = Counter(r.what for r in failed)
    counts_text = (
        f"{len(journal.reads)} reads after own writes, {len(failed)} stale"
        + (f" ({_top(failed_kind)})" if failed else "")
        + f"; kinds: {len(by_kind)}"
    )
    examples = [f"{_at(journal, r.at)} {r.actor}: {r.what}: {r.detail}" for r in failed[:EXAMPLES]]
    return Row("reads see the user's own writes", not failed, counts_text, examples)


def check_checkouts(journal: Journal) -> Row:
    twice = [a for a in journal.checkouts if a.submits > 1]
    split = [a for a in journal.checkouts if len(set(a.numbers)) > 1]
    placed = sum(1 for a in journal.checkouts if a.numbers)
    counts_text = (
        f"{len(journal.checkouts)} checkouts ({placed} answered with an order), "
        f"{len(twice)} submitted twice, {len(split)} made two orders"
    )
    examples = [
        f"{a.actor} {a.channel} key {a.key}: orders {sorted(set(a.numbers))}"
        for a in split[:EXAMPLES]
    ]
    return Row("a checkout submitted twice makes one order", not split, counts_text, examples)


async def check_all(
    tree: Tree, journal: Journal, initial: dict[int, int], grace: float
) -> list[Row]:
    """Every invariant's row, in the order of this module's docstring."""
    logs = await asyncio.to_thread(Logs, tree.processes)
    return [
        check_requests(
            journal,
            logs,
            grace,
            dict(zip(tree.web_ports, (w.name for w in tree.webs), strict=False)),
        ),
        await check_stock(tree, journal, initial),
        await check_payments(tree, journal),
        await check_emails(tree, journal, logs),
        await check_outbox(tree, journal, logs),
        check_reads(journal),
        check_checkouts(journal),
    ]


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table; a failed row's examples follow it, indented."""
    width = max(len(r.name) for r in rows)
    lines = [f" #  {'invariant':<{width}}  result  counts"]
    for number, row in enumerate(rows, 1):
        result = "pass" if row.passed else "FAIL"
        lines.append(f"{number:>2}  {row.name:<{width}}  {result:<6}  {row.counts}")
        if not row.passed:
            lines.extend(f"      - {example}" for example in row.examples)
    return "\n".join(lines)
