"""The operator's table (tests/soak/operator.py): a row per kind of fault, its first occurrence;
"NOT SHOWN" when every look was green, or when only another fault's light turned; a light already
red as the fault began is not counted as the fault shown; a poison is shown by its dead count; a
5xx from /ops outside every fault is a finding, inside one it is not."""

from __future__ import annotations

from tests.soak.journal import FaultWindow, Journal
from tests.soak.operator import Operator
from tests.soak.pages import Light
from tests.soak.sights import POISON_QUEUE, PageRead, Sight, Watch

GREEN = [Light("Redis", "green", "answers"), Light("Workers", "green", "2 alive")]


def sight(offset: float, at: float, lights: list[Light], *reads: PageRead) -> Sight:
    return Sight(offset, at, reads=list(reads), lights=lights)


def operator_with(journal: Journal, *watches: Watch) -> Operator:
    operator = Operator([1], journal, 7)
    operator.watches = list(watches)
    for watch in watches:
        for look in watch.sights:
            operator.reads += look.reads
    return operator


def test_a_fault_every_look_showed_green_is_reported_not_shown() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("smtp-refuse", "smtp", 1010.0, 1015.0)
    journal.faults.append(fault)
    watch = Watch(fault, [sight(t, 1010.0 + t, GREEN) for t in (0, 5, 15, 30)])
    text = operator_with(journal, watch).table(journal, grace=5.0)
    assert "smtp-refuse at +10 s (smtp 5 s): NOT SHOWN within 30 s" in text
    assert text.count("all green") == 4  # the four looks


def test_a_new_red_light_is_shown_at_its_moment_with_its_reason() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("redis-down", "redis", 1020.0, 1026.0)
    journal.faults.append(fault)
    down = [Light("Redis", "red", "ConnectionError: refused"), GREEN[1]]
    looks = [sight(0, 1020, GREEN), sight(5, 1025, down), sight(15, 1035, GREEN)]
    text = operator_with(journal, Watch(fault, looks)).table(journal, grace=5.0)
    assert "redis-down at +20 s (redis 6 s): shown at +5 s (Redis red)" in text
    assert "+5 s   Redis red: ConnectionError: refused" in text


def test_another_faults_light_does_not_show_this_fault() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("kill-worker", "worker-0", 1020.0, 1024.0)
    journal.faults.append(fault)
    broker = [*GREEN, Light("Broker (rabbitmq)", "red", "StreamLostError")]
    looks = [sight(0, 1020, GREEN), sight(5, 1025, broker), sight(15, 1035, GREEN)]
    text = operator_with(journal, Watch(fault, looks)).table(journal, grace=5.0)
    assert "kill-worker at +20 s (worker-0 4 s): NOT SHOWN within 30 s" in text
    assert "+5 s   Broker (rabbitmq) red: StreamLostError" in text


def test_a_poison_is_shown_by_its_queues_dead_count_growing() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("poison", "outbox", 1030.0, 1030.0)
    journal.faults.append(fault)
    looks = [sight(t, 1030 + t, GREEN) for t in (0, 5, 15)]
    for look, dead in zip(looks, (0, 0, 1), strict=True):
        look.dead[POISON_QUEUE] = dead
    operator = operator_with(journal, Watch(fault, looks))
    operator.baseline = sight(0, 1001, GREEN)
    operator.baseline.dead[POISON_QUEUE] = 0
    shown = f"poison at +30 s (outbox): shown at +15 s ({POISON_QUEUE} has 1 dead)"
    assert shown in operator.table(journal, grace=5.0)


def test_a_light_red_before_the_fault_does_not_count_as_shown() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("kill-worker", "worker-1", 1040.0, 1043.0)
    journal.faults.append(fault)
    red = [GREEN[0], Light("Workers", "red", "1 silent; 1 alive")]
    looks = [sight(t, 1040 + t, red) for t in (0, 5, 15, 30)]
    watch = Watch(fault, looks, before=sight(0, 1038, red))
    text = operator_with(journal, watch).table(journal, grace=5.0)
    assert "NOT SHOWN anew within 30 s (its signal was on before it began)" in text
    assert "Workers red (so before it began): 1 silent; 1 alive" in text
    assert "before Workers red: 1 silent; 1 alive" in text


def test_a_fault_the_look_as_it_began_shows_is_shown_at_0_s() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("refuse-broker", "broker", 1040.0, 1043.0)
    journal.faults.append(fault)
    red = [*GREEN, Light("Broker (rabbitmq)", "red", "StreamLostError")]
    watch = Watch(fault, [sight(0, 1040.5, red)], before=sight(0, 1038, GREEN))
    text = operator_with(journal, watch).table(journal, grace=5.0)
    assert "refuse-broker at +40 s (broker 3 s): shown at +0 s (Broker (rabbitmq) red)" in text


def test_only_the_first_fault_of_a_kind_has_a_row() -> None:
    journal = Journal(started=1000.0)
    first = FaultWindow("poison", "outbox", 1010.0, 1010.0)
    second = FaultWindow("poison", "outbox", 1050.0, 1050.0)
    journal.faults += [first, second]
    watches = [Watch(f, [sight(0, f.started, GREEN)]) for f in (first, second)]
    text = operator_with(journal, *watches).table(journal, grace=5.0)
    assert text.count("poison at +") == 1
    assert "poison at +10 s" in text


def test_a_5xx_from_ops_outside_every_fault_is_a_finding_inside_one_it_is_not() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("redis-down", "redis", 1020.0, 1026.0)
    journal.faults.append(fault)
    inside = PageRead("/ops/", 1024.0, 503, "answered 503")
    outside = PageRead("/ops/queues", 1080.0, 500, "answered 500")
    looks = [sight(5, 1024.0, [], inside), sight(60, 1080.0, GREEN, outside)]
    operator = operator_with(journal, Watch(fault, looks))
    assert operator.server_errors_outside(journal, grace=5.0) == [outside]
    text = operator.table(journal, grace=5.0)
    assert "FINDING: /ops/queues answered 500 at +80.0 s, outside any fault" in text
    assert "/ops/ answered 503" in text  # shown in its moment, not as a finding
    assert "5xx from /ops outside any fault: 1" in text


def test_a_lost_machine_is_shown_by_its_own_processes_not_another_machines() -> None:
    journal = Journal(started=1000.0)
    fault = FaultWindow("lose-machine", "machine-b", 1020.0, 1025.0)
    journal.faults.append(fault)
    other = Light("Relays", "amber", "1 silent (machine-a:8786 silent for 7 s); 1 alive")
    lost = Light("Relays", "red", "none alive (machine-a:8786 silent, machine-b:8788 silent)")
    elsewhere = sight(0, 1020, [GREEN[0], other])
    elsewhere.alarms = ["workers page: relay machine-a/8786 red, silent for 6 s"]
    down = sight(5, 1025, [GREEN[0], lost])
    down.alarms = [*elsewhere.alarms, "workers page: worker machine-b/8942 red, silent for 5 s"]
    text = operator_with(journal, Watch(fault, [elsewhere, down])).table(journal, grace=5.0)
    assert "lose-machine at +20 s (machine-b 5 s): shown at +5 s (Relays red, " in text
    assert "workers page: worker machine-b/8942 red)" in text
