from django.db import connection


def release_connection() -> None:
    """Hand the thread's database connection back to the pool before a long wait.

    Threads waiting on a model or an upstream must not hold every pooled connection:
    with 256 requests in flight and 16 connections, the 17th would queue for one just to
    authenticate. Inside a transaction (tests) the connection is kept.
    """
    if not connection.in_atomic_block:
        connection.close()
