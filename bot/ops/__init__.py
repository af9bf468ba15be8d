"""Scheduled operations for ``deptbot serve``: knowledge refresh on a per-department schedule,
answer-level evals after each refresh, alerts and a weekly digest to department admins.

Modules, each owning one thing: ``schedule`` (the ``refresh:`` value and its trigger),
``locks`` (lease locks and once-per-slot claims shared by processes), ``runner`` (the jobs),
``signals`` (counts read from the audit log), ``psi`` (retrieval-score drift), ``alerts``
(the conditions and their texts), ``digest`` (the weekly summary), ``post`` (Slack and
Teams delivery) and ``service`` (wiring it into ``deptbot serve``). What was sent when lives
in ``bot.store.alerts``; eval results in ``bot.store.evalruns``.
"""
