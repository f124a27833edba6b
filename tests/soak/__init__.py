"""The soak harness: the whole process tree under random concurrent users while faults are
injected on a schedule, then invariants checked (see invariants.py).

tree.py starts the services and processes, journeys.py (with shoppers.py, apps.py, staff.py) the
simulated users, faults.py the injector, invariants.py the checks and their table, operator.py
(with pages.py and sights.py) the operator watching /ops through the faults and its table,
screenshots.py the /ops pages in Chromium, run.py one run, __main__.py the command line (`make
soak`). tests/integration/test_soak.py is its short form.
"""
