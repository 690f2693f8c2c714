#!/usr/bin/env python3
"""Log in, and optionally cancel a query, through a Postgres server or proxy with one client.

    .venv/clients/bin/python pgbalancer/tests/clients/matrix.py \\
        --client {psql,psycopg,asyncpg,pg8000} --sslmode {disable,prefer,require} \\
        --host H --port P --user U --password PW --dbname D [--cancel]

Prints one JSON object on stdout and exits 0, whatever the outcome (a failed login is a result);
only bad arguments exit non-zero (2, from argparse). The fields:

    client, sslmode   as given
    login             the client connected and `SELECT 1` answered 1
    tls               whether the client's own connection is encrypted, as the client reports it
                      (null when it did not connect)
    cancel            null without --cancel; else "ok" (the server ended `pg_sleep(10)` with
                      SQLSTATE 57014 within 3 s of the cancel), "not_cancelled" (it ran on; the
                      attempt is given up 4 s after the cancel), "unsupported" (the client has no
                      way to cancel) or "error" (the cancel failed, or the query ended otherwise)
    cancel_ms         milliseconds from sending the cancel to the query's error, or null
    error             what went wrong, or null
    client_version    the client and, for psycopg, the libpq it runs on

The server's certificate is never verified (libpq's sslmode semantics: prefer tries TLS and
falls back to plain, require insists on TLS). Each client cancels the way it does natively:
psql sends a CancelRequest on SIGINT, psycopg's Connection.cancel_safe() (libpq >= 17: over TLS
when the session is TLS), asyncpg on a timed-out query; pg8000 has no cancel API. The PG*
environment variables are dropped first so only the arguments decide. One run takes at most
~10 s: a watchdog prints what is known and exits, so the caller never hangs.
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOGIN_TIMEOUT = 4.0  # seconds to connect and answer SELECT 1
CANCEL_AFTER = 0.3  # seconds the query runs before the cancel
CANCEL_OK_WITHIN = 3.0  # the server must end the query this soon after the cancel for "ok"
CANCEL_GIVE_UP = 4.0  # after the cancel, stop waiting for the query
HARD_LIMIT = 9.5  # the watchdog's limit for the whole run
SLEEP_SQL = "select pg_sleep(10)"
QUERY_CANCELED = "57014"

_emitted = threading.Lock()
_children = []  # subprocesses the watchdog kills


def emit_and_exit(result):
    """Print the one result line and leave at once, whatever threads are still blocked."""
    if _emitted.acquire(blocking=False):
        for child in _children:
            if child.poll() is None:
                child.kill()
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)
    # Another thread is already emitting; it exits the process.
    time.sleep(60)


def describe(exc):
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def judge_cancel(result, sqlstate, seconds, message):
    """Set cancel, cancel_ms and error from how the cancelled query ended."""
    result["cancel_ms"] = round(seconds * 1000, 1)
    if sqlstate == QUERY_CANCELED and seconds <= CANCEL_OK_WITHIN:
        result["cancel"] = "ok"
    elif sqlstate == QUERY_CANCELED:
        result["cancel"] = "not_cancelled"
        result["error"] = f"cancelled only after {result['cancel_ms']} ms"
    else:
        result["cancel"] = "error"
        result["error"] = f"the query ended with SQLSTATE {sqlstate}: {message}"


# --- psql -------------------------------------------------------------------------------------


def psql_command(a, *args):
    return ["psql", "-X", "-w", "-h", a.host, "-p", str(a.port), "-U", a.user, "-d", a.dbname, *args]


def psql_env(a):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGPASSWORD=a.password,
        PGSSLMODE=a.sslmode,
        PGCONNECT_TIMEOUT=str(int(LOGIN_TIMEOUT)),
        # No GSSENCRequest before the SSLRequest, even where a Kerberos ticket happens to exist.
        PGGSSENCMODE="disable",
        PGAPPNAME="pgbalancer-matrix",
        LC_ALL="C",  # untranslated messages to match on
    )
    env.pop("LANGUAGE", None)
    return env


def run_psql(a, result):
    version = subprocess.run(["psql", "--version"], capture_output=True, text=True, timeout=3)
    result["client_version"] = version.stdout.strip()
    env = psql_env(a)

    result["phase"] = "login"
    login = subprocess.run(
        psql_command(a, "-At", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1", "-c", "\\conninfo"),
        capture_output=True, text=True, env=env, timeout=LOGIN_TIMEOUT + 1,
    )
    lines = login.stdout.splitlines()
    if login.returncode != 0 or not lines or lines[0] != "1":
        result["error"] = login.stderr.strip() or f"psql exited {login.returncode}: {login.stdout!r}"
        return
    result["login"] = True
    # \conninfo reports the client's side: "SSL connection (protocol: TLSv1.3, ...)" when it is.
    result["tls"] = any(line.startswith("SSL connection (") for line in lines)
    if not a.cancel:
        return

    # A second psql runs the sleep; \warn (to unbuffered stderr) says it is connected and about
    # to send the query, so the 300 ms count from there and not from psql's start-up.
    result["phase"] = "cancel"
    marker = "pgbalancer-matrix: query starts"
    proc = subprocess.Popen(
        psql_command(a, "-v", "VERBOSITY=verbose", "-c", f"\\warn {marker}", "-c", SLEEP_SQL),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    _children.append(proc)
    started, ended = threading.Event(), threading.Event()
    seen = {"lines": []}

    def read_stderr():
        for line in proc.stderr:
            line = line.rstrip("\n")
            seen["lines"].append(line)
            if line == marker:
                started.set()
            m = re.match(r"ERROR:\s+([0-9A-Z]{5}): (.*)", line)
            if m and "error" not in seen:
                seen["error"] = (m.group(1), m.group(2), time.monotonic())
                ended.set()
        ended.set()  # EOF: psql is gone

    threading.Thread(target=read_stderr, daemon=True).start()
    if not started.wait(LOGIN_TIMEOUT) or proc.poll() is not None:
        proc.kill()
        result["cancel"] = "error"
        result["error"] = "psql did not start the query: " + " | ".join(seen["lines"])
        return
    time.sleep(CANCEL_AFTER)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)  # psql sends a CancelRequest on SIGINT
    ended.wait(CANCEL_GIVE_UP)
    if "error" in seen:
        sqlstate, message, when = seen["error"]
        judge_cancel(result, sqlstate, when - sent, message)
        if result["cancel"] == "ok" and message != "canceling statement due to user request":
            result["error"] = f"unexpected message for 57014: {message}"
    elif proc.poll() is None:
        result["cancel"] = "not_cancelled"
        result["error"] = f"the query still ran {CANCEL_GIVE_UP:.0f} s after SIGINT"
        proc.kill()
    else:
        result["cancel"] = "error"
        result["error"] = f"psql exited {proc.returncode} without an error: " + " | ".join(seen["lines"])
    try:
        proc.wait(1)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- psycopg ----------------------------------------------------------------------------------


def run_psycopg(a, result):
    import psycopg
    from psycopg import pq

    libpq = pq.version()
    result["client_version"] = (
        f"psycopg {psycopg.__version__} ({pq.__impl__}, libpq {libpq // 10000}.{libpq % 10000})"
    )
    result["phase"] = "login"
    try:
        conn = psycopg.connect(
            host=a.host, port=a.port, user=a.user, password=a.password, dbname=a.dbname,
            sslmode=a.sslmode, gssencmode="disable", connect_timeout=int(LOGIN_TIMEOUT),
            application_name="pgbalancer-matrix",
            # Autocommit, so the session is usable right after the cancelled statement.
            autocommit=True,
        )
        one = conn.execute("SELECT 1").fetchone()[0]
    except psycopg.Error as e:
        result["error"] = describe(e)
        return
    result["login"] = one == 1
    result["tls"] = bool(conn.pgconn.ssl_in_use)
    if not a.cancel:
        conn.close()
        return

    result["phase"] = "cancel"
    outcome = {}
    done = threading.Event()

    def sleep_query():
        try:
            conn.execute(SLEEP_SQL)
            outcome["returned"] = True
        except psycopg.Error as e:
            outcome["error"] = (e.sqlstate, describe(e), time.monotonic())
        finally:
            done.set()

    threading.Thread(target=sleep_query, daemon=True).start()
    time.sleep(CANCEL_AFTER)
    sent = time.monotonic()
    try:
        # With libpq >= 17 this is PQcancelCreate/PQcancelBlocking: a CancelRequest that is
        # encrypted when the session is; older libpq falls back to the plain PQcancel.
        conn.cancel_safe(timeout=CANCEL_GIVE_UP)
    except Exception as e:  # noqa: BLE001 - any failure of the cancel is the result
        result["cancel"] = "error"
        result["error"] = "cancel_safe: " + describe(e)
        return  # the sleeping thread dies with the process
    if not done.wait(max(0.0, CANCEL_GIVE_UP - (time.monotonic() - sent))):
        result["cancel"] = "not_cancelled"
        result["error"] = f"the query still ran {CANCEL_GIVE_UP:.0f} s after cancel_safe()"
        return
    if "error" not in outcome:
        result["cancel"] = "error"
        result["error"] = "pg_sleep(10) returned without an error"
        return
    sqlstate, message, when = outcome["error"]
    judge_cancel(result, sqlstate, when - sent, message)
    if result["cancel"] == "ok":
        try:
            conn.execute("SELECT 1").fetchone()
        except psycopg.Error as e:
            result["cancel"] = "error"
            result["error"] = "the session is unusable after the cancel: " + describe(e)
    conn.close()


# --- asyncpg ----------------------------------------------------------------------------------


def run_asyncpg(a, result):
    import asyncio

    import asyncpg

    result["client_version"] = f"asyncpg {asyncpg.__version__}"
    ssl = {"disable": False, "prefer": "prefer", "require": "require"}[a.sslmode]

    async def go():
        result["phase"] = "login"
        try:
            conn = await asyncio.wait_for(
                asyncpg.connect(
                    host=a.host, port=a.port, user=a.user, password=a.password,
                    database=a.dbname, ssl=ssl, timeout=LOGIN_TIMEOUT,
                    server_settings={"application_name": "pgbalancer-matrix"},
                ),
                LOGIN_TIMEOUT + 0.5,
            )
            one = await asyncio.wait_for(conn.fetchval("SELECT 1"), LOGIN_TIMEOUT)
        except (Exception, asyncio.TimeoutError) as e:  # noqa: BLE001
            result["error"] = describe(e)
            return
        result["login"] = one == 1
        # After a successful SSLRequest asyncpg runs the session on a TLS transport.
        result["tls"] = conn._transport.get_extra_info("ssl_object") is not None
        if not a.cancel:
            await conn.close(timeout=2)
            return

        result["phase"] = "cancel"
        start = time.monotonic()
        try:
            await asyncio.wait_for(conn.fetch(SLEEP_SQL), CANCEL_AFTER)
            result["cancel"] = "error"
            result["error"] = "pg_sleep(10) returned within the timeout"
            return
        except asyncio.TimeoutError:
            # asyncpg sends a CancelRequest in the background and keeps the connection busy
            # until the server has ended the statement (its 57014 is swallowed by asyncpg).
            sent = time.monotonic()
        except Exception as e:  # noqa: BLE001
            result["cancel"] = "error"
            result["error"] = describe(e)
            return
        try:
            one = await asyncio.wait_for(
                conn.fetchval("SELECT 1"), max(0.0, CANCEL_GIVE_UP - (time.monotonic() - sent))
            )
        except asyncio.TimeoutError:
            result["cancel"] = "not_cancelled"
            result["error"] = f"the session was still busy {CANCEL_GIVE_UP:.0f} s after the timeout"
            conn.terminate()
            return
        except Exception as e:  # noqa: BLE001 - e.g. asyncpg dropped the session: cancel failed
            result["cancel"] = "error"
            result["error"] = "the session is unusable after the cancel: " + describe(e)
            conn.terminate()
            return
        end = time.monotonic()
        # asyncpg does not show the server's error: the statement counts as cancelled (57014)
        # when the session answers SELECT 1 soon, long before pg_sleep(10) could have ended.
        if one == 1 and end - start < CANCEL_OK_WITHIN:
            judge_cancel(result, QUERY_CANCELED, end - sent, "")
        else:
            result["cancel"] = "not_cancelled"
            result["cancel_ms"] = round((end - sent) * 1000, 1)
            result["error"] = f"SELECT 1 answered {one!r} only {end - start:.1f} s after the query began"
        await conn.close(timeout=2)

    asyncio.run(go())


# --- pg8000 -----------------------------------------------------------------------------------


def run_pg8000(a, result):
    import importlib.metadata
    import ssl

    import pg8000.native

    result["client_version"] = f"pg8000 {importlib.metadata.version('pg8000')}"

    def unverified():
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def connect(ssl_context):
        conn = pg8000.native.Connection(
            a.user, host=a.host, port=a.port, database=a.dbname, password=a.password,
            ssl_context=ssl_context, timeout=LOGIN_TIMEOUT, application_name="pgbalancer-matrix",
        )
        one = conn.run("SELECT 1")[0][0]
        return conn, one

    # pg8000 has no sslmode. Its ssl_context=None (the default!) is a prefer of its own: it sends
    # an SSLRequest and stays plain on "N", but does not fall back when the handshake or the
    # login over TLS fails, and ssl_context=False is what sends no SSLRequest. So here: disable
    # passes False; require passes an unverified SSLContext (pg8000 then insists on TLS); prefer
    # tries that same require first and, on a failure other than a time-out, connects again with
    # False, as libpq's prefer does.
    result["phase"] = "login"
    tls = a.sslmode != "disable"
    try:
        try:
            conn, one = connect(unverified() if tls else False)
        except Exception as first:  # noqa: BLE001
            if a.sslmode != "prefer" or isinstance(first, TimeoutError):
                raise  # a server that does not answer gets no second 4 s, as with libpq
            tls = False
            try:
                conn, one = connect(False)
            except Exception as second:  # noqa: BLE001
                raise RuntimeError(f"over TLS: {describe(first)}; plain: {describe(second)}")
    except Exception as e:  # noqa: BLE001
        result["error"] = describe(e)
        return
    result["login"] = one == 1
    result["tls"] = tls
    if a.cancel:
        # pg8000 1.31 has no API to send a CancelRequest (nor a timeout that would).
        result["cancel"] = "unsupported"
    conn.close()


# --- main -------------------------------------------------------------------------------------

CLIENTS = {"psql": run_psql, "psycopg": run_psycopg, "asyncpg": run_asyncpg, "pg8000": run_pg8000}


def reexec_in_venv():
    """Run as ./matrix.py, switch to the repo's .venv/clients, where the drivers are."""
    if importlib.util.find_spec("psycopg") is not None:
        return
    venv = Path(__file__).resolve().parents[3] / ".venv" / "clients"
    python = venv / "bin" / "python"
    if python.is_file() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(python), [str(python), *sys.argv])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--client", required=True, choices=sorted(CLIENTS))
    p.add_argument("--sslmode", required=True, choices=["disable", "prefer", "require"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--dbname", required=True)
    p.add_argument("--cancel", action="store_true", help="also cancel a running pg_sleep(10)")
    a = p.parse_args()
    if a.client != "psql":
        reexec_in_venv()
    for key in [k for k in os.environ if k.startswith("PG")]:
        del os.environ[key]

    result = {
        "client": a.client, "sslmode": a.sslmode, "login": False, "tls": None,
        "cancel": None, "cancel_ms": None, "error": None, "client_version": None,
        "phase": "start",
    }

    def watchdog():
        phase = result.get("phase")
        result["error"] = f"gave up after {HARD_LIMIT} s in the {phase} step"
        if phase == "cancel" and result["cancel"] is None:
            result["cancel"] = "not_cancelled"
        result.pop("phase", None)
        emit_and_exit(result)

    timer = threading.Timer(HARD_LIMIT, watchdog)
    timer.daemon = True
    timer.start()
    try:
        CLIENTS[a.client](a, result)
    except Exception as e:  # noqa: BLE001 - a crash is reported, not raised
        result["error"] = describe(e)
        if result["phase"] == "cancel" and result["cancel"] is None:
            result["cancel"] = "error"
    result.pop("phase", None)
    emit_and_exit(result)


if __name__ == "__main__":
    main()
